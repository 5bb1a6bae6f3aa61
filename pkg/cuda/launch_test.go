package cuda

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"unsafe"
)

// TestPackArgsLayout checks, byte by byte, what cuLaunchKernel will read
// through each kernelParams pointer: the value in the slot's low bytes,
// little-endian, zero above.
func TestPackArgsLayout(t *testing.T) {
	args := []any{
		DevicePtr(0x7f0012345600),
		Buffer{Ptr: 0x7f00aaaa0000, Bytes: 64},
		int32(-2),
		uint32(0xdeadbeef),
		float32(1.5),
		int64(-1 << 40),
		uint64(1<<63 + 5),
		uintptr(0x1000),
		float64(math.Pi),
	}
	slots := make([]uint64, len(args))
	if err := packArgs(slots, args); err != nil {
		t.Fatal(err)
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&slots[0])), 8*len(slots))
	want := [][]byte{
		le64(0x7f0012345600),
		le64(0x7f00aaaa0000),
		append(le32(0xfffffffe), 0, 0, 0, 0), // int32 -2, not sign-extended into the slot
		append(le32(0xdeadbeef), 0, 0, 0, 0),
		append(le32(math.Float32bits(1.5)), 0, 0, 0, 0),
		le64(uint64(1<<64 - 1<<40)),
		le64(1<<63 + 5),
		le64(0x1000),
		le64(math.Float64bits(math.Pi)),
	}
	for i, w := range want {
		got := raw[8*i : 8*i+8]
		if string(got) != string(w) {
			t.Errorf("arg %d (%T): bytes % x, want % x", i, args[i], got, w)
		}
	}
	// A kernel reading an int from the slot sees -2; a float sees 1.5.
	if v := *(*int32)(unsafe.Pointer(&slots[2])); v != -2 {
		t.Errorf("int32 slot reads %d", v)
	}
	if v := *(*float32)(unsafe.Pointer(&slots[4])); v != 1.5 {
		t.Errorf("float32 slot reads %g", v)
	}
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func TestPackArgsRejects(t *testing.T) {
	x := 3
	tests := []struct {
		arg  any
		want string
	}{
		{int(3), "convert to int32"},
		{uint(3), "convert to int32"},
		{nil, "DevicePtr(0)"},
		{&x, "has type *int"},
		{"s", "has type string"},
		{[]float32{1}, "has type []float32"},
	}
	for _, tc := range tests {
		err := packArgs(make([]uint64, 2), []any{int32(1), tc.arg})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "argument 1") {
			t.Errorf("packArgs(%T) = %v, want error mentioning argument 1 and %q", tc.arg, err, tc.want)
		}
	}
}

func TestCheckLaunchDims(t *testing.T) {
	tests := []struct {
		grid, block [3]uint32
		bad         string
	}{
		{[3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, ""},
		{[3]uint32{1 << 20, 1, 1}, [3]uint32{256, 1, 1}, ""},
		{[3]uint32{maxGridX, 65535, 65535}, [3]uint32{32, 32, 1}, ""},
		{[3]uint32{0, 1, 1}, [3]uint32{1, 1, 1}, "at least 1"},
		{[3]uint32{1, 1, 1}, [3]uint32{1, 0, 1}, "at least 1"},
		{[3]uint32{1, 1, 1}, [3]uint32{1025, 1, 1}, "1025 threads"},
		{[3]uint32{1, 1, 1}, [3]uint32{64, 32, 1}, "2048 threads"},
		{[3]uint32{1, 1, 1}, [3]uint32{1, 1, 65}, "z is 65"},
		{[3]uint32{1, 65536, 1}, [3]uint32{1, 1, 1}, "exceeds"},
		{[3]uint32{1 << 31, 1, 1}, [3]uint32{1, 1, 1}, "exceeds"},
	}
	for _, tc := range tests {
		err := checkLaunchDims(tc.grid, tc.block)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("grid %v block %v: %v", tc.grid, tc.block, err)
		case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("grid %v block %v: err %v, want %q", tc.grid, tc.block, err, tc.bad)
		}
	}
}

func TestGridFor(t *testing.T) {
	for _, tc := range []struct {
		n, bs int
		want  uint32
	}{{0, 256, 1}, {1, 256, 1}, {256, 256, 1}, {257, 256, 2}, {1 << 20, 256, 4096}, {10, 0, 1}} {
		if got := GridFor(tc.n, tc.bs); got != tc.want {
			t.Errorf("GridFor(%d, %d) = %d, want %d", tc.n, tc.bs, got, tc.want)
		}
	}
}

func TestBytesAndFloat32s(t *testing.T) {
	f := []float32{1, -2, 0.5}
	b := Bytes(f)
	if len(b) != 12 || binary.LittleEndian.Uint32(b[4:]) != math.Float32bits(-2) {
		t.Fatalf("Bytes = % x", b)
	}
	back := Float32s(b)
	back[2] = 7 // a view, not a copy
	if f[2] != 7 {
		t.Error("Float32s copied")
	}
	if Bytes([]int64(nil)) != nil || Float32s(nil) != nil {
		t.Error("empty views should be nil")
	}
	defer func() {
		if recover() == nil {
			t.Error("Float32s of 3 bytes did not panic")
		}
	}()
	Float32s(make([]byte, 3))
}
