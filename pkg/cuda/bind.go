package cuda

import (
	"fmt"
	"runtime"
	"unsafe"

	native "github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/ebitengine/purego"
)

// sym is one C function to bind: a pointer to a Go func variable with the
// C signature, and the exported names to try, in order. Versioned names
// come first: cuda.h maps cuMemAlloc to cuMemAlloc_v2 with a macro, so
// the plain name in the library is the old ABI, kept only for binaries
// built against old headers.
type sym struct {
	fptr     any
	names    []string
	optional bool
}

// bindSyms resolves every entry of table in the library opened as handle.
// RegisterLibFunc would panic on a missing symbol; a library too old for
// this package must instead be an ordinary error naming what is missing.
// It returns, per first name, the name actually bound (for Probe).
func bindSyms(lib string, handle uintptr, table []sym) (map[string]string, error) {
	chosen := make(map[string]string, len(table))
	var missing []string
	for _, s := range table {
		found := false
		for _, n := range s.names {
			addr, err := native.Sym(handle, n)
			if err != nil || addr == 0 {
				continue
			}
			purego.RegisterFunc(s.fptr, addr)
			chosen[s.names[0]] = n
			found = true
			break
		}
		if !found && !s.optional {
			missing = append(missing, s.names...)
		}
	}
	if len(missing) > 0 {
		return chosen, fmt.Errorf("cuda: %s lacks symbol(s) %v: the library is older than this package needs", lib, missing)
	}
	return chosen, nil
}

// goString copies a NUL-terminated C string. Library-owned static strings
// (cuGetErrorString's) come back through a char** out-parameter, which
// purego cannot convert for us as it does for char* returns.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	var n int
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 && n < 1<<16 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// cBytes returns s as a NUL-terminated byte slice whose memory the caller
// keeps alive for as long as C may read it. purego copies string arguments
// into memory that lives only for one call, which is too short for
// strings a library might keep.
func cBytes(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// cStringArray lays out strs as C strings in one Go buffer plus a table of
// their addresses (a char**). The buffer is pinned with pin before its
// addresses are taken, so they stay valid until pin.Unpin; the table holds
// them as uintptr, so it is not Go memory holding Go pointers. Returns a
// nil table for no strings.
func cStringArray(strs []string, pin *runtime.Pinner) []uintptr {
	if len(strs) == 0 {
		return nil
	}
	n := 0
	for _, s := range strs {
		n += len(s) + 1
	}
	buf := make([]byte, n)
	pin.Pin(&buf[0])
	ptrs := make([]uintptr, len(strs))
	o := 0
	for i, s := range strs {
		copy(buf[o:], s)
		ptrs[i] = uintptr(unsafe.Pointer(&buf[o]))
		o += len(s) + 1
	}
	return ptrs
}
