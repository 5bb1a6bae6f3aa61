package cuda

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// LibraryReport is what Probe found for one library.
type LibraryReport struct {
	Name      string   // "CUDA driver", "cuBLAS", ...
	Path      string   // what was opened ("libcuda.so.1 => /usr/lib/...")
	Version   string   // "13.0", "9.10.2"; empty if not loaded
	Preloaded []string // companions opened first from the same folder
	Err       string   // why it is unavailable; empty if it loaded
	Tried     []string // the search, when it failed
	Skipped   []string // copies that opened but were refused, with why, even when another was taken
}

// ProbeReport describes this machine's CUDA stack, for docs/gpu-machine.md
// and the gpu-check table. On a machine without CUDA it says what is
// missing and where it was looked for.
type ProbeReport struct {
	GOOS, GOARCH string
	Env          map[string]string // the variables that steer the search
	Driver       LibraryReport
	CUBLAS       LibraryReport
	CUDNN        LibraryReport
	NVRTC        LibraryReport
	NVRTCArchs   []int
	NVRTCCUBIN   bool // nvrtcGetCUBIN is there: kernels can be machine code
	Devices      []DeviceInfo
	DeviceErr    string
}

// Probe loads what it can and reports. It creates no context: device
// properties come from the driver directly.
func Probe() ProbeReport {
	r := ProbeReport{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Env: map[string]string{}}
	for _, v := range []string{"ALEXNET_CUDA_LIB", "ALEXNET_CUDA_DEVICE", "LD_LIBRARY_PATH", "CUDA_HOME", "CUDA_PATH", "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_TF32_OVERRIDE"} {
		if s, ok := os.LookupEnv(v); ok {
			r.Env[v] = s
		}
	}

	r.Driver = LibraryReport{Name: "CUDA driver"}
	a, err := driver()
	fillLib(&r.Driver, libDriver, err)
	if a != nil && a.initErr == nil {
		r.Driver.Version = VersionString(a.driverVersion)
		for i := range a.deviceCount {
			info, _, err := a.deviceInfo(i)
			if err != nil {
				r.DeviceErr = err.Error()
				break
			}
			r.Devices = append(r.Devices, info)
		}
	} else if err != nil {
		r.DeviceErr = err.Error()
	}

	r.CUBLAS = LibraryReport{Name: "cuBLAS"}
	b, err := cublas()
	fillLib(&r.CUBLAS, libCUBLAS, err)
	if b != nil {
		r.CUBLAS.Version = fmt.Sprintf("%d.%d.%d", b.version[0], b.version[1], b.version[2])
	}

	r.NVRTC = LibraryReport{Name: "NVRTC"}
	c, err := nvrtc()
	fillLib(&r.NVRTC, libNVRTC, err)
	if c != nil {
		r.NVRTC.Version = fmt.Sprintf("%d.%d", c.major, c.minor)
		r.NVRTCArchs = append(r.NVRTCArchs, c.archs...)
		r.NVRTCCUBIN = c.getCUBIN != nil && c.getCUBINSize != nil
	}

	r.CUDNN = LibraryReport{Name: "cuDNN"}
	d, err := cudnn()
	fillLib(&r.CUDNN, libCUDNN, err)
	if d != nil {
		r.CUDNN.Version = cudnnVersionString(d.version)
	}
	return r
}

// kernelTarget says what Device.CompileModule builds for a device of
// compute capability cc with this NVRTC.
func (r ProbeReport) kernelTarget(cc ComputeCapability) string {
	if r.NVRTCCUBIN {
		if sm, ok := cubinArchFor(cc, r.NVRTCArchs); ok {
			return "machine code (CUBIN) for " + sm
		}
	}
	return "PTX for " + archFor(cc, r.NVRTCArchs) + ", compiled by the driver's JIT"
}

func fillLib(rep *LibraryReport, l *loadedLib, err error) {
	rep.Path = loadedPath(l)
	rep.Preloaded = l.res.preloaded
	rep.Skipped = l.res.skipped
	if err != nil {
		rep.Err = err.Error()
		var nf *NotFoundError
		var re *ResidentError
		if errors.As(err, &re) {
			rep.Err = "no usable " + rep.Name + ": " + err.Error()
		}
		if errors.As(err, &nf) {
			rep.Err = nf.Lib + " not found"
			if u := nf.Unusable(); u != "" {
				rep.Err = "no usable " + rep.Name + ": " + u
			}
			rep.Tried = nf.Tried
		}
	}
}

// Available reports whether the driver, a GPU, cuBLAS, cuDNN and NVRTC
// are all usable.
func (r ProbeReport) Available() bool {
	return r.Driver.Err == "" && len(r.Devices) > 0 && r.CUBLAS.Err == "" && r.CUDNN.Err == "" && r.NVRTC.Err == ""
}

// Markdown renders the report as the table docs/gpu-machine.md uses,
// followed by the search details of anything missing.
func (r ProbeReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| component | version | path |\n|---|---|---|\n")
	for _, l := range []LibraryReport{r.Driver, r.CUBLAS, r.CUDNN, r.NVRTC} {
		v, p := l.Version, l.Path
		switch {
		case l.Err != "" && l.Path != "":
			v, p = "unusable", l.Path+": "+firstLine(l.Err)
		case strings.HasPrefix(l.Err, "no usable "):
			v, p = "unusable", l.Err
		case l.Err != "":
			v, p = "missing", l.Err
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` |\n", l.Name, v, p)
	}
	for _, d := range r.Devices {
		fmt.Fprintf(&b, "| GPU %d | sm_%d%d | %s, %.1f GiB, %d SMs, %d copy engines, PCI %s |\n",
			d.Ordinal, d.ComputeCapability.Major, d.ComputeCapability.Minor, d.Name,
			float64(d.TotalMem)/(1<<30), d.SMs, d.AsyncEngines, d.PCIBusID)
	}
	if len(r.Devices) == 0 {
		why := firstLine(r.DeviceErr)
		if r.Driver.Err != "" && r.Driver.Path == "" {
			why = "no driver"
		}
		fmt.Fprintf(&b, "| GPU | none | %s |\n", strings.ReplaceAll(why, "|", "/"))
	}
	if len(r.NVRTCArchs) > 0 {
		fmt.Fprintf(&b, "\nNVRTC targets: %v\n", r.NVRTCArchs)
	}
	if r.NVRTC.Version != "" {
		for _, d := range r.Devices {
			fmt.Fprintf(&b, "\nKernels for GPU %d: %s\n", d.Ordinal, r.kernelTarget(d.ComputeCapability))
		}
	}
	for _, l := range []LibraryReport{r.Driver, r.CUBLAS, r.CUDNN, r.NVRTC} {
		if len(l.Skipped) > 0 && l.Err == "" { // on a failure the search below lists them
			fmt.Fprintf(&b, "\n%s: passed over (opened, then refused):\n", l.Name)
			for _, t := range l.Skipped {
				fmt.Fprintf(&b, "- %s\n", t)
			}
		}
		if len(l.Preloaded) > 0 {
			fmt.Fprintf(&b, "\n%s: opened first from its folder: %s\n", l.Name, strings.Join(l.Preloaded, ", "))
		}
		if len(l.Tried) > 0 {
			fmt.Fprintf(&b, "\n%s search:\n", l.Name)
			for _, t := range l.Tried {
				fmt.Fprintf(&b, "- %s\n", t)
			}
		}
	}
	return b.String()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
