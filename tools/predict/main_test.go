package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/cli/clitest"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
	"github.com/alexnet-repro/alexnet/shards"
)

// fixture writes a 4-class meta.json and a small model's checkpoint into a
// new folder.
func fixture(t *testing.T) (dir string, meta *shards.Meta, ck *trainer.Checkpoint, ckPath string) {
	t.Helper()
	dir = t.TempDir()
	meta = &shards.Meta{FormatVersion: shards.Version, Width: 24, Height: 24, Channels: 3, Splits: map[string]shards.Split{}}
	for i, w := range []string{"n01", "n02", "n03", "n04"} {
		meta.Classes = append(meta.Classes, shards.Class{Index: i, WNID: w, Name: "class " + w})
	}
	if err := shards.WriteMeta(dir, meta); err != nil {
		t.Fatal(err)
	}
	spec, _ := alexnet.Build("small", 4, 20)
	params, _ := alexnet.InitParams(spec, "", 3)
	ck = &trainer.Checkpoint{Model: "small", Classes: 4, InputHW: 20, Seed: 3, Mean: [3]float32{120, 120, 120}, Std: [3]float32{60, 60, 60}}
	for _, p := range spec.Params() {
		ck.Tensors = append(ck.Tensors, trainer.Tensor{Name: p.Name, Shape: p.Shape, W: params[p.Name], V: make([]float32, len(params[p.Name]))})
	}
	ckPath = filepath.Join(dir, "c.ckpt")
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	return dir, meta, ck, ckPath
}

// An image decoded past damage (libjpeg's "Corrupt JPEG data") is
// classified with a warning, as ingest keeps such an image and says so.
func TestPredictWarnsOfDamage(t *testing.T) {
	if imageio.BackendKind() == "stdlib" {
		t.Skip("image/jpeg refuses what libjpeg-turbo decodes past damage: no warning to give")
	}
	dir, _, _, ckPath := fixture(t)
	path := filepath.Join(dir, "damaged.JPEG")
	if err := os.WriteFile(path, fixtures.DamagedJPEG(t), 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", path}, &so, &se)
	var p prediction
	if err := json.Unmarshal(so.Bytes(), &p); err != nil || code != 0 || len(p.Probs) == 0 ||
		!strings.Contains(p.Warning, "decoded past damage: Corrupt JPEG data") || !strings.Contains(se.String(), "damaged.JPEG: decoded past damage") {
		t.Fatalf("exit %d, %+v (%v), stderr %q", code, p, err, se.String())
	}
}

// A signal stops predict between files: those done are printed, and
// --json ends with an error line carrying exit code 130, as train's and
// ingest's do, not with whatever line the signal cut.
func TestPredictInterrupted(t *testing.T) {
	dir, _, _, ckPath := fixture(t)
	img := filepath.Join(dir, "a.JPEG")
	os.WriteFile(img, fixtures.JPEG(t, 50, 40, 1, false), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var so, se bytes.Buffer
	code := runContext(ctx, []string{"--checkpoint", ckPath, "--shards", dir, "--json", img, img}, &so, &se)
	var res struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil || code != cli.ExitInterrupted || res.ExitCode != cli.ExitInterrupted ||
		!strings.Contains(res.Error, "interrupted after 0 of 2 files") {
		t.Fatalf("exit %d, %+v (%v)\nstdout %s\nstderr %s", code, res, err, so.String(), se.String())
	}
	// Stopped after a file: its line, then the closing one.
	ctx, cancel = context.WithCancel(context.Background())
	so.Reset()
	code = runContext(ctx, []string{"--checkpoint", ckPath, "--shards", dir, "--json", img, img}, cancelAfterLine{&so, cancel}, &se)
	lines := strings.Split(strings.TrimSpace(so.String()), "\n")
	if len(lines) != 2 || code != cli.ExitInterrupted {
		t.Fatalf("exit %d, stdout %s", code, so.String())
	}
	var p prediction
	if err := json.Unmarshal([]byte(lines[0]), &p); err != nil || len(p.Probs) == 0 {
		t.Errorf("first line %s (%v)", lines[0], err)
	}
	res.Error = ""
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil || res.ExitCode != cli.ExitInterrupted || !strings.Contains(res.Error, "interrupted after 1 of 2 files") {
		t.Errorf("closing line %s (%v)", lines[1], err)
	}
}

// cancelAfterLine cancels a context once a line is written: a signal
// that lands while the first file's result is printed.
type cancelAfterLine struct {
	w      *bytes.Buffer
	cancel context.CancelFunc
}

func (c cancelAfterLine) Write(p []byte) (int, error) {
	defer c.cancel()
	return c.w.Write(p)
}

func TestPredict(t *testing.T) {
	dir, meta, ck, ckPath := fixture(t)
	img := filepath.Join(dir, "a.JPEG")
	os.WriteFile(img, fixtures.JPEG(t, 50, 40, 1, false), 0o644)
	bad := filepath.Join(dir, "bad.JPEG")
	os.WriteFile(bad, []byte("not an image"), 0o644)

	var so, se bytes.Buffer
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--k", "3", img}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	if n := strings.Count(so.String(), "class n0"); n != 3 {
		t.Fatalf("want 3 classes listed:\n%s", so.String())
	}
	// More than the model has: all of them, with a note.
	for _, c := range []struct {
		k    string
		note bool
	}{{"4", false}, {"9", true}} {
		so.Reset()
		se.Reset()
		code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--k", c.k, img}, &so, &se)
		said := strings.Contains(se.String(), "predict: note: --k 9 is more than the model's 4 classes: each image gets all 4")
		if code != 0 || strings.Count(so.String(), "class n0") != 4 || said != c.note {
			t.Errorf("--k %s of 4 classes: exit %d, note %v:\n%s%s", c.k, code, said, so.String(), se.String())
		}
	}
	// Left at its default, 5 of the model's 4, --k is not noted: nobody
	// asked for more classes than there are.
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se); code != 0 || strings.Contains(se.String(), "--k") {
		t.Errorf("--k left out: exit %d, stderr %q", code, se.String())
	}
	// What is not an image file is refused per file without opening it (a
	// pipe would wait for a writer), the path printed once.
	dangling := filepath.Join(dir, "link.JPEG")
	if err := os.Symlink("/nonexistent/target.JPEG", dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.JPEG")
	if err := fixtures.Mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, tc := range []struct{ file, want string }{
		{fifo, ": a named pipe, not an image file\n"},
		{filepath.Join(dir, "missing.JPEG"), "missing.JPEG: no such file or directory\n"},
		{dangling, ": dangling symbolic link to /nonexistent/target.JPEG\n"},
	} {
		se.Reset()
		if code := run([]string{"--checkpoint", ckPath, "--shards", dir, tc.file}, &so, &se); code != 1 || !strings.HasSuffix(se.String(), tc.want) ||
			strings.Count(se.String(), tc.file) != 1 {
			t.Errorf("%s: exit %d, stderr %q, want it to end %q", tc.file, code, se.String(), tc.want)
		}
	}
	// A result that cannot be written (a full disk) is a failure.
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, failWriter{}, &se); code != 1 || !strings.Contains(se.String(), "writing the result") {
		t.Errorf("stdout failing: exit %d, stderr %q", code, se.String())
	}
	// Usage mistakes say what is missing.
	se.Reset()
	if code := run([]string{"--shards", dir}, &so, &se); code != 2 || se.String() != "predict: missing --checkpoint, an IMAGE, FOLDER or - (see --help)\n" {
		t.Errorf("no checkpoint or image: exit %d, stderr %q", code, se.String())
	}
	// A path that names nothing is a usage error too, named by its flag.
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--checkpoint", ckPath + ".absent", "--shards", dir, img}, "predict: --checkpoint " + ckPath + ".absent does not exist\n"},
		{[]string{"--checkpoint", ckPath, "--shards", dir + "-absent", img}, "predict: --shards " + dir + "-absent does not exist\n"},
		{[]string{"--checkpoint", ckPath, "--shards", dir, "--json", "true", img}, "predict: unexpected argument \"true\": --json takes its value after =, as --json=true\n"},
		{[]string{"--checkpoint", ckPath, "--shards", dir, "-", img, "-"}, "predict: - (standard input) given 2 times: it holds one image\n"},
	} {
		se.Reset()
		if code := run(c.args, &so, &se); code != 2 || se.String() != c.say {
			t.Errorf("%q: exit %d, stderr %q", c.args, code, se.String())
		}
	}
	so.Reset()
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", img, bad}, &so, &se); code != 1 {
		t.Fatalf("a bad file must make the exit code 1, got %d", code)
	}
	lines := strings.Split(strings.TrimSpace(so.String()), "\n")
	var p prediction
	if err := json.Unmarshal([]byte(lines[0]), &p); err != nil || len(p.Probs) != 4 {
		t.Fatalf("%v %s", err, lines[0])
	}
	for i, c := range p.Indices {
		if p.WNIDs[i] != meta.Classes[c].WNID || p.Names[i] != meta.Classes[c].Name || p.Classes[i] != meta.Classes[c].Name {
			t.Fatalf("class %d: wnid %q, name %q, label %q; meta.json has %+v", c, p.WNIDs[i], p.Names[i], p.Classes[i], meta.Classes[c])
		}
	}
	sum := 0.0
	for i, pr := range p.Probs {
		sum += pr
		if i > 0 && pr > p.Probs[i-1] {
			t.Fatal("not sorted best first")
		}
	}
	if sum < 0.999 || sum > 1.001 {
		t.Fatalf("probabilities sum to %v", sum)
	}
	if err := json.Unmarshal([]byte(lines[1]), &p); err != nil || p.Error == "" {
		t.Fatalf("bad file not reported: %s", lines[1])
	}
	// A file that fails is named on stderr, in both modes; stdout keeps
	// only results.
	for _, args := range [][]string{{img, bad}, {"--json", img, bad}} {
		so.Reset()
		se.Reset()
		code := run(append([]string{"--checkpoint", ckPath, "--shards", dir}, args...), &so, &se)
		if code != 1 || !strings.Contains(se.String(), "predict: "+bad+": ") {
			t.Errorf("%v: exit %d, stderr %q: want exit 1 and the bad file named", args, code, se.String())
		}
		if args[0] == img && strings.Contains(so.String(), bad) {
			t.Errorf("%v: the error went to stdout: %q", args, so.String())
		}
	}

	// Flags after the images are flags; after "--" everything is a file.
	so.Reset()
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img, "--json", "--k", "2"}, &so, &se); code != 0 ||
		json.Unmarshal(so.Bytes(), &p) != nil || len(p.Probs) != 2 {
		t.Errorf("flags after the image: exit %d, stdout %q, stderr %q", code, so.String(), se.String())
	}
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", "--", "-x.JPEG"}, &so, &se); code != 1 || !strings.Contains(so.String(), `"file":"-x.JPEG"`) {
		// Not in the working directory: not found, but tried as a file.
		t.Errorf("a file after --: exit %d, %q", code, so.String())
	}
	// A name that is not UTF-8 keeps its bytes: quoted in --json, and
	// Go-quoted on the text output's line.
	latin := filepath.Join(dir, "caf\xe9.JPEG")
	os.WriteFile(latin, fixtures.JPEG(t, 30, 30, 3, false), 0o644)
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", latin}, &so, &se); code != 0 ||
		json.Unmarshal(so.Bytes(), &p) != nil || p.FileQuoted != strconv.Quote(latin) {
		t.Errorf("a non-UTF-8 name: exit %d, %s", code, so.String())
	}
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, latin}, &so, &se); code != 0 || !strings.HasPrefix(so.String(), strconv.Quote(latin)+"\n") {
		t.Errorf("a non-UTF-8 name in text: exit %d, %q", code, so.String())
	}

	for _, k := range []string{"0", "-3"} {
		se.Reset()
		if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--k", k, img}, &so, &se); code != 2 || !strings.Contains(se.String(), "--k") {
			t.Errorf("--k %s: exit %d, %s", k, code, se.String())
		}
	}
	// A checkpoint that keeps its class list is refused for shards whose
	// classes are the same number but another list.
	other := append([]shards.Class(nil), meta.Classes...)
	other[0], other[1] = other[1], other[0]
	ck.ClassList = trainer.ClassListID(other)
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	se.Reset()
	// A checkpoint and shards that do not go together: a usage error.
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se); code != 2 || !strings.Contains(se.String(), "another class list") {
		t.Errorf("another class list: exit %d, %s", code, se.String())
	}
	// Under --json, a failure before any image is one JSON object.
	so.Reset()
	se.Reset()
	code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", img}, &so, &se)
	if obj := clitest.JSONFailure(t, so.Bytes(), 2); code != 2 || !strings.Contains(obj["error"].(string), "another class list") {
		t.Errorf("another class list, --json: exit %d, %s", code, so.String())
	}
	ck.ClassList = trainer.ClassListID(meta.Classes)
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se); code != 0 {
		t.Errorf("the same class list: exit %d, %s", code, se.String())
	}

	// A checkpoint that records the image side it trained on is fed at
	// that side, whatever the shards' (24 here): a 64-px resize then a
	// 20-px centre crop sees another part of the image than 24-px does.
	so.Reset()
	run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", img}, &so, &se)
	at24 := so.String()
	ck.ImageHW = 64
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	so.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", img}, &so, &se); code != 0 || so.String() == at24 {
		t.Errorf("a checkpoint trained on 64-px images: exit %d, same output as at 24 px: %v (%s)", code, so.String() == at24, se.String())
	}
	ck.ImageHW = 0

	// Weights that are NaN give no probabilities: an error for each file,
	// and --json still writes a line for it.
	w0 := ck.Tensors[0].W[0]
	ck.Tensors[0].W[0] = float32(math.NaN())
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	so.Reset()
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", img}, &so, &se); code != 1 || !strings.Contains(so.String(), "NaN") {
		t.Errorf("NaN weights: exit %d, stdout %q, stderr %q", code, so.String(), se.String())
	}
	ck.Tensors[0].W[0] = w0

	// Header values with a valid CRC that no run writes are refused.
	for _, tc := range []struct {
		name string
		edit func(c *trainer.Checkpoint)
	}{
		{"image side below the crop", func(c *trainer.Checkpoint) { c.ImageHW = 4 }},
		{"absurd image side", func(c *trainer.Checkpoint) { c.ImageHW = 100000 }},
		{"zero std", func(c *trainer.Checkpoint) { c.Std = [3]float32{} }},
	} {
		bad := *ck
		tc.edit(&bad)
		if err := bad.Save(ckPath); err != nil {
			t.Fatal(err)
		}
		se.Reset()
		if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se); code != 1 || !strings.Contains(se.String(), "not an intact checkpoint") {
			t.Errorf("%s: exit %d, %s", tc.name, code, se.String())
		}
	}

	// A checkpoint that needs what this build does not know is refused by
	// name; one whose unknown need is a resume's alone still predicts.
	for _, tc := range []struct {
		needs, resumeNeeds []string
		code               int
	}{
		{needs: []string{"future_tensors"}, code: 1},
		{resumeNeeds: []string{"future_state"}, code: 0},
	} {
		bad := *ck
		bad.Needs, bad.ResumeNeeds = tc.needs, tc.resumeNeeds
		if err := bad.Save(ckPath); err != nil {
			t.Fatal(err)
		}
		se.Reset()
		code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se)
		if code != tc.code || (tc.code == 1 && !strings.Contains(se.String(), `needs "future_tensors"`)) {
			t.Errorf("needs %v, resume needs %v: exit %d, %s", tc.needs, tc.resumeNeeds, code, se.String())
		}
	}

	// A checkpoint whose crop is larger than these shards' images.
	ck.InputHW = 28
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, img}, &so, &se); code != 2 || !strings.Contains(se.String(), "does not fit") {
		t.Errorf("a crop larger than the images: exit %d, %s", code, se.String())
	}
}

// failWriter fails every write, as a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// A folder stands for the images under it, in name order, hidden files
// and non-images left out (those counted in a note); one without images
// is a failure of its own; - reads standard input.
func TestPredictFoldersAndStdin(t *testing.T) {
	dir, _, _, ckPath := fixture(t)
	photos := filepath.Join(t.TempDir(), "photos")
	jpeg := fixtures.JPEG(t, 50, 40, 1, false)
	for _, f := range []string{"b.jpg", "a.JPEG", "sub/c.png", "notes.txt", ".DS_Store", ".hidden/d.jpg"} {
		p := filepath.Join(photos, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, jpeg, 0o644) // c.png is a JPEG by its bytes: the decoder goes by those
	}
	empty := filepath.Join(t.TempDir(), "empty")
	os.Mkdir(empty, 0o755)

	old := stdin
	defer func() { stdin = old }()
	stdin = bytes.NewReader(jpeg)
	var so, se bytes.Buffer
	code := run([]string{"--checkpoint", ckPath, "--shards", dir, "--json", photos, "-", empty}, &so, &se)
	var files, failed []string
	for _, line := range strings.Split(strings.TrimSpace(so.String()), "\n") {
		var p prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		files = append(files, p.File)
		if p.Error != "" {
			failed = append(failed, p.File+": "+p.Error)
		}
	}
	want := []string{filepath.Join(photos, "a.JPEG"), filepath.Join(photos, "b.jpg"), filepath.Join(photos, "sub/c.png"), "-", empty}
	if code != cli.ExitFailure || !slices.Equal(files, want) {
		t.Fatalf("exit %d, files %q, want %q\n%s", code, files, want, se.String())
	}
	if len(failed) != 1 || !strings.Contains(failed[0], "a folder without image files") {
		t.Errorf("failures %q: want the empty folder's alone", failed)
	}
	if !strings.Contains(se.String(), "photos: left out 1 entry not named as images ("+filepath.Join(photos, "notes.txt")+")") {
		t.Errorf("no note of the text file:\n%s", se.String())
	}
	// Standard input empty, the second time it is read.
	so.Reset()
	se.Reset()
	if code := run([]string{"--checkpoint", ckPath, "--shards", dir, "-"}, &so, &se); code != cli.ExitFailure || !strings.Contains(se.String(), "-: standard input is empty") {
		t.Errorf("empty stdin: exit %d\n%s", code, se.String())
	}
}

// The child half of TestPredictClosedPipe: predict's own main.
func init() {
	if os.Getenv("PREDICT_MAIN_CHILD") == "" {
		return
	}
	os.Args = append(os.Args[:1], strings.Split(os.Getenv("PREDICT_MAIN_CHILD"), "\n")...)
	main()
}

// `predict … | head -1`: the reader going ends predict quietly by
// SIGPIPE, as it ends cat, rather than with a "broken pipe" error and
// exit 1 (what ignoring SIGPIPE, as train and ingest do, would give).
func TestPredictClosedPipe(t *testing.T) {
	dir, _, _, ckPath := fixture(t)
	img := filepath.Join(dir, "a.JPEG")
	os.WriteFile(img, fixtures.JPEG(t, 50, 40, 1, false), 0o644)
	args := []string{"--checkpoint", ckPath, "--shards", dir}
	for range 200 {
		args = append(args, img)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), "PREDICT_MAIN_CHILD="+strings.Join(args, "\n"))
	var se bytes.Buffer
	cmd.Stderr = &se
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != img {
		t.Fatalf("first line %q (%v), want %q; stderr %s", line, err, img, se.String())
	}
	out.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGPIPE || se.Len() != 0 {
		t.Errorf("after its reader went: %v, stderr %q; want death by SIGPIPE, nothing said", err, se.String())
	}
}
