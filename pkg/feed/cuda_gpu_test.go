package feed

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// spinSource holds the compute stream back on the device, so that the
// copier runs as far ahead as its buffers let it while a step still reads
// its batch: a missing wait shows up as a batch overwritten under it.
const spinSource = `
extern "C" __global__ void spin(long long cycles) {
	long long t0 = clock64();
	while (clock64() - t0 < cycles) {}
}
`

// gpuFeedEpochs is how many epochs TestGPUFeedBytes reads.
const gpuFeedEpochs = 2

// needDevice is the CUDA device, or a skip naming why there is none
// (a failure under ALEXNET_REQUIRE_GPU=1, as on the GPU machine).
func needDevice(t *testing.T) *cuda.Device {
	t.Helper()
	d, err := cuda.Init()
	if err != nil {
		if os.Getenv("ALEXNET_REQUIRE_GPU") == "1" {
			t.Fatalf("no CUDA driver: %v", err)
		}
		t.Skipf("no CUDA driver: %v", err)
	}
	return d
}

// TestGPUFeedBytes checks, on a GPU, the two rules the fake device can
// only model: a pinned slot goes back to the pipeline only once its copy
// has landed, and a device buffer is refilled only once its step no
// longer reads it. Every released slot is overwritten with 0xAA at once,
// and each step spins on the device before and after it reads its buffer
// back; the bytes read must be the pipeline's batch, bit for bit, for 1,
// 2 and 4 device buffers.
func TestGPUFeedBytes(t *testing.T) {
	dev := needDevice(t)
	dir := t.TempDir()
	writeShards(t, dir, 100, testSide) // 12 batches of 8 an epoch
	want := referenceHashes(t, dir, gpuFeedEpochs)
	mod, err := dev.CompileModule(spinSource, "feedtest.cu", nil)
	if err != nil {
		// As the other GPU tests: no usable NVRTC is a skip that names
		// it, a failure only where a GPU is required.
		if os.Getenv("ALEXNET_REQUIRE_GPU") == "1" {
			t.Fatalf("NVRTC: %v", err)
		}
		t.Skipf("NVRTC: %v", err)
	}
	defer mod.Unload()
	spin, err := mod.Function("spin")
	if err != nil {
		t.Fatal(err)
	}
	compute, err := dev.NewStream()
	if err != nil {
		t.Fatal(err)
	}
	defer compute.Destroy()
	back, err := dev.HostAlloc(testLayout.Bytes()) // pinned: read back asynchronously
	if err != nil {
		t.Fatal(err)
	}
	defer dev.HostFree(back)
	for _, buffers := range []int{1, 2, 4} {
		feedBytes(t, dev, dir, want, spin, compute, back, buffers)
	}
}

// feedBytes is one TestGPUFeedBytes run, its cleanups deferred in the
// order that stops the copier before anything it uses goes, also after a
// t.Fatal (which would otherwise leave it copying for the binary's later
// tests).
func feedBytes(t *testing.T, dev *cuda.Device, dir string, want []uint64, spin *cuda.Function, compute *cuda.Stream, back []byte, buffers int) {
	const cycles = int64(2_000_000) // about 1 ms a spin
	slots, release, err := PinnedSlots(dev, 4, testLayout)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	pl, err := pipeline.New(context.Background(), dir, pipeline.Options{Mode: pipeline.Train, Batch: testBatch, Crop: testCrop,
		Seed: 9, Epochs: gpuFeedEpochs, Decoders: 2, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	fd, err := NewCUDADevice(dev, compute, testLayout, buffers)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	poison := func(s *pipeline.Slot) {
		block, err := testLayout.Block(s)
		if err == nil {
			for i := range block {
				block[i] = 0xAA
			}
		}
		s.Release()
	}
	f, err := newFeed(pl, fd, Options{}, poison)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	steps, bad := 0, 0
	for {
		b, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%d buffers, step %d: %v", buffers, steps, err)
		}
		n := testLayout.CopyBytes(b.N)
		must := func(what string, err error) {
			if err != nil {
				t.Fatalf("%d buffers, step %d: %s: %v", buffers, steps, what, err)
			}
		}
		must("begin", f.Begin(b))
		must("spin", spin.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, compute, cycles))
		must("read back", dev.MemcpyDtoHAsync(back[:n], b.Dev.Base, compute))
		must("free", f.Free(b))
		must("spin", spin.Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, compute, cycles))
		must("end", f.End(b))
		must("sync", compute.Synchronize())
		if steps < len(want) && hashBytes(back[:n]) != want[steps] && bad < 5 {
			bad++
			t.Errorf("%d buffers: step %d read other bytes than the pipeline's batch %d", buffers, steps, steps)
		}
		steps++
	}
	if err := f.Close(); err != nil {
		t.Error(err)
	}
	st := f.Stats()
	if steps != len(want) {
		t.Errorf("%d buffers: %d steps, want %d", buffers, steps, len(want))
	}
	t.Logf("%d buffers: %d steps, bytes checked; copy overlapped the step %d times, data wait %.1f%%",
		buffers, steps, st.Overlap, 100*st.WaitFraction())
}
