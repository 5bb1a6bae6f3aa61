package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

func newFlags(name, usage string, stdout, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("shardtool "+name, stdout, stderr, "Usage: shardtool "+usage+"\n\nFlags:\n")
}

type shardCheck struct {
	Split   string   `json:"split"`
	Shard   string   `json:"shard"`
	Records int      `json:"records_ok"`
	Damage  []string `json:"damage,omitempty"`
	// Unreadable is why a shard could not be opened for a reason that
	// says nothing of its bytes (permission denied): not damage, which
	// would send the user to delete a good shard.
	Unreadable string `json:"unreadable,omitempty"`
}

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	o := cli.NewOutcome("shardtool verify", args, stdout, stderr)
	defer func() { code = o.Finish(code) }()
	stdout = o.Stdout()
	fs := newFlags("verify", "verify DIR [--decode] [--json] [--workers 0]\n\nRe-reads every shard listed in DIR/meta.json, checking record CRCs, the index,\nthe whole-file CRC, the sizes and checksums meta.json recorded, and each\nrecord's label, size and codec against meta.json.\n\nExample:\n  shardtool verify ./shards --decode --json | jq .damaged\n\nExit codes: 0 no damage, 1 failed (or an unfinished ingest unlisted a\nsplit, which it names), 2 usage (or a DIR that does not exist or is a file), 4 damage found (each shard and record named).", stdout, stderr)
	decode := fs.Bool("decode", false, "also decompress every record's pixels")
	asJSON := fs.Bool("json", false, "print results as JSON")
	workers := fs.Int("workers", 0, "shards checked in parallel (0: all cores)")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return o.ParseFailed(fs, args, err)
	}
	o.JSON = *asJSON
	if err := oneDir(pos); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	if *workers < 0 {
		return o.Failf(cli.ExitUsage, "--workers %d: want 0 (all cores) or more", *workers)
	}
	if *workers == 0 {
		*workers = runtime.GOMAXPROCS(0)
	}
	dir := pos[0]
	// An ingest rewriting the folder would show as damage.
	lock, err := dirlock.AcquireShared(dir, "shardtool verify", shards.MetaFile)
	if err != nil {
		return o.Fail(cli.ExitFailure, err)
	}
	defer lock.Release()
	m, err := shards.ReadMeta(dir)
	if err != nil {
		var me *shards.MetaError
		if !errors.As(err, &me) {
			return o.Fail(metaExit(err), err)
		}
		// A meta.json that is there but unusable is damage like a shard's,
		// and a --json consumer needs its report to say so.
		metaCheck := []shardCheck{{Shard: shards.MetaFile, Damage: []string{err.Error()}}}
		return verifyReport(dir, metaCheck, 0, nil, nil, false, *asJSON, stdout, stderr)
	}
	type task struct {
		split string
		info  shards.ShardInfo
	}
	var tasks []task
	for _, split := range slices.Sorted(maps.Keys(m.Splits)) {
		for _, sh := range m.Splits[split].Shards {
			tasks = append(tasks, task{split, sh})
		}
	}
	// More workers than shards would only idle (and a huge --workers
	// would spend memory and time starting them).
	*workers = max(1, min(*workers, len(tasks)))
	results := make([]shardCheck, len(tasks))
	ids := make([][]recordID, len(tasks)) // each shard's intact records, for the split-wide check
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				t := tasks[i]
				path := filepath.Join(dir, t.info.File)
				if size, ok := t.info.LargerOnDisk(dir); ok {
					results[i] = shardCheck{Split: t.split, Shard: t.info.File,
						Damage: []string{fmt.Sprintf("shard %s: %d bytes, meta.json says %d (not verified further)", t.info.File, size, t.info.Bytes)}}
					continue
				}
				res := shards.VerifyWith(path, *decode, func(rec *shards.Record) error {
					if err := m.CheckRecord(t.split, rec); err != nil {
						return err
					}
					ids[i] = append(ids[i], recordID{rec.ID, rec.Name})
					return nil
				})
				// Refused at the open, which says nothing of its bytes.
				if len(res.Damage) == 1 && errors.Is(res.Damage[0], os.ErrPermission) {
					var re *shards.RecordError
					why := res.Damage[0]
					if errors.As(why, &re) {
						why = re.Err
					}
					results[i] = shardCheck{Split: t.split, Shard: t.info.File, Unreadable: why.Error()}
					continue
				}
				c := shardCheck{Split: t.split, Shard: t.info.File, Records: res.Records}
				for _, d := range res.Damage {
					c.Damage = append(c.Damage, d.Error())
				}
				// A shard intact in itself may still not be the one
				// meta.json lists (another shard copied over it); one
				// damaged already differs from the listing because of
				// that damage, which is named once, above.
				if len(c.Damage) == 0 {
					if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && st.Size() != t.info.Bytes {
						c.Damage = append(c.Damage, fmt.Sprintf("shard %s: %d bytes, meta.json says %d", t.info.File, st.Size(), t.info.Bytes))
					}
					if r, err := shards.Open(path); err == nil {
						if got := fmt.Sprintf("%08x", r.FileCRC()); got != t.info.CRC32C {
							c.Damage = append(c.Damage, fmt.Sprintf("shard %s: file CRC %s, meta.json says %s", t.info.File, got, t.info.CRC32C))
						}
						r.Close()
					}
				}
				if res.Records != t.info.Records && len(c.Damage) == 0 {
					c.Damage = append(c.Damage, fmt.Sprintf("shard %s: %d records, meta.json says %d", t.info.File, res.Records, t.info.Records))
				}
				results[i] = c
			}
		}()
	}
	for i := range tasks {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return o.Fail(cli.ExitFailure, "interrupted")
	}
	// Every shard can be intact and the split still wrong: a shard copied
	// over another (and its meta.json entry edited to match) repeats
	// images and loses others. IDs are unique within a split. Shards that
	// match meta.json claim their IDs first, so a shard found wrong above
	// (another's copied over it, not listed as it is) takes the blame for
	// a clash rather than the intact ones after it: on ImageNet a val
	// shard copied over a train shard shares IDs with nearly every train
	// shard, and all of them would have been named for deleting.
	order := make([]int, 0, len(tasks))
	for _, wrong := range []bool{false, true} {
		for i := range tasks {
			if (len(results[i].Damage) > 0) == wrong {
				order = append(order, i)
			}
		}
	}
	owner := map[string]map[uint64]string{}
	for _, i := range order {
		t := tasks[i]
		if owner[t.split] == nil {
			owner[t.split] = map[uint64]string{}
		}
		dup, first := 0, ""
		for _, r := range ids[i] {
			if prev, ok := owner[t.split][r.id]; ok {
				if dup == 0 {
					first = fmt.Sprintf("ID %d (%s) also in %s", r.id, cli.Name(r.name), prev)
				}
				dup++
				continue
			}
			owner[t.split][r.id] = t.info.File
		}
		if dup > 0 {
			results[i].Damage = append(results[i].Damage, fmt.Sprintf("shard %s: %d records repeat IDs of other shards of split %s (first: %s): a shard copied over another?", t.info.File, dup, t.split, first))
		}
	}
	extra := unlistedShards(dir, m)
	if len(extra) > 0 {
		fmt.Fprintf(stderr, "shardtool verify: note: %s in %s not listed in meta.json, so not verified: %s\n", cli.Count(len(extra), "shard file is", "shard files are"), dir, cli.FirstFew(extra, 10))
	}
	code = verifyReport(dir, results, len(results), extra, m.Unfinished, m.Checksum == "", *asJSON, stdout, stderr)
	// The listed shards can all be sound while a split is missing: a
	// script's verify-then-train must not read that folder as ready.
	for _, split := range slices.Sorted(maps.Keys(m.Unfinished)) {
		fmt.Fprintf(stderr, "shardtool verify: %s/%s\n", dir, m.Missing(split))
		if code == cli.ExitOK {
			code = cli.ExitFailure
		}
	}
	return code
}

// nonNil is m, or an empty map for JSON's {} where there is none (a
// consumer reads null as another type).
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

type recordID struct {
	id   uint64
	name string
}

// unlistedShards names the *.shard files in dir that meta.json does not
// list: ingest removes the ones it no longer lists, so these come from
// elsewhere, from an edited meta.json, or from an unfinished ingest.
func unlistedShards(dir string, m *shards.Meta) []string {
	listed := map[string]bool{}
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			listed[sh.File] = true
		}
	}
	ents, _ := os.ReadDir(dir)
	out := []string{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".shard") && !listed[e.Name()] {
			out = append(out, cli.Name(e.Name()))
		}
	}
	return out
}

// verifyReport prints the checks of nShards shards (and of meta.json, when
// it is damaged, which leaves no shard list to check) and gives the exit
// code. metaEdited says meta.json has no checksum: edited by hand, so
// its edit may be the fault the shards are named for.
func verifyReport(dir string, results []shardCheck, nShards int, unlisted []string, unfinished map[string]string, metaEdited, asJSON bool, stdout, stderr io.Writer) int {
	bad, records := 0, 0
	var out bytes.Buffer
	var badNames, unreadable []string
	for _, c := range results {
		records += c.Records
		if c.Unreadable != "" {
			unreadable = append(unreadable, c.Shard)
			if !asJSON {
				fmt.Fprintf(&out, "UNREADABLE shard %s: %s\n", c.Shard, c.Unreadable)
			}
		}
		if len(c.Damage) > 0 {
			bad++
			badNames = append(badNames, c.Shard)
			if !asJSON {
				for _, d := range c.Damage {
					fmt.Fprintln(&out, "DAMAGED", d)
				}
			}
		}
	}
	switch {
	case asJSON:
		enc := json.NewEncoder(&out)
		enc.SetIndent("", "  ") // as the other commands' --json
		enc.Encode(map[string]any{"shards": nShards, "damaged": bad, "unreadable": len(unreadable), "records_ok": records, "results": results,
			"unlisted":   append([]string{}, unlisted...), // shard files meta.json does not list, not verified
			"unfinished": nonNil(unfinished)})             // splits an unfinished ingest unlisted
	case nShards < len(results):
		fmt.Fprintf(&out, "%s is damaged, so there is no list of shards to verify\n", shards.MetaFile)
	default:
		fmt.Fprintf(&out, "verified %s, %s ok, %s", cli.Count(len(results), "shard", "shards"), cli.Count(records, "record", "records"), cli.Count(bad, "damaged shard", "damaged shards"))
		if len(unreadable) > 0 {
			fmt.Fprintf(&out, ", %s", cli.Count(len(unreadable), "shard that could not be read", "shards that could not be read"))
		}
		fmt.Fprintln(&out)
	}
	// A report that cannot be written (a full disk) must not pass for a
	// clean one: a script reads the exit code.
	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintln(stderr, "shardtool verify: writing the report:", err)
		return cli.ExitFailure
	}
	if bad > 0 && nShards == len(results) {
		// After the report, which it refers to (2>&1 in a log keeps the
		// order). A rerun of ingest keeps a shard whose sources are
		// unchanged.
		// A shard that is gone needs no deleting: told to delete it, a
		// user looks for a file that is not there.
		var present, gone []string
		for _, n := range badNames {
			if _, err := os.Lstat(filepath.Join(dir, n)); errors.Is(err, os.ErrNotExist) {
				gone = append(gone, n)
			} else {
				present = append(present, n)
			}
		}
		shard := func(n int) string { return cli.Plural(n, "shard", "shards") }
		switch {
		case metaEdited:
			// A class cut from the list or a count changed by hand makes
			// intact shards disagree with it: deleting them first would
			// remake good shards, or, where the sources are gone, lose them.
			// A flipped bit is found again after that rerun, which
			// trusts finished shards: the second step repairs it.
			fmt.Fprintf(stderr, "shardtool verify: meta.json has no checksum (edited by hand since ingest wrote it), so the fault may be that edit rather than the %s named: run the same ingest command again first, deleting nothing (it rewrites meta.json from the shards, undoing the edit); if verify then still names shards, delete those and run it once more\n",
				shard(len(badNames)))
		case len(gone) == 0:
			fmt.Fprintf(stderr, "shardtool verify: to repair, delete the damaged %s (%s) and run the same ingest command again: it remakes only %s, byte for byte\n",
				shard(len(present)), cli.FirstFew(present, 10), cli.Plural(len(present), "that one", "those"))
		case len(present) == 0:
			fmt.Fprintf(stderr, "shardtool verify: to repair, run the same ingest command again: it writes the missing %s (%s) anew, byte for byte, and keeps the others\n",
				shard(len(gone)), cli.FirstFew(gone, 10))
		default:
			fmt.Fprintf(stderr, "shardtool verify: to repair, delete the damaged %s (%s) and run the same ingest command again: it remakes %s, and writes the missing %s (%s) anew, byte for byte\n",
				shard(len(present)), cli.FirstFew(present, 10), cli.Plural(len(present), "it", "them"), shard(len(gone)), cli.FirstFew(gone, 10))
		}
	}
	if len(unreadable) > 0 {
		// Not verified, so not called intact either: a failure, whose
		// cure is the folder's permissions, not a new ingest.
		fmt.Fprintf(stderr, "shardtool verify: %s could not be read, so not verified (not damage: check the files' owner and permissions): %s\n",
			cli.Count(len(unreadable), "shard", "shards"), cli.FirstFew(unreadable, 10))
	}
	if bad > 0 {
		return cli.ExitDamaged
	}
	if len(unreadable) > 0 {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

func inspect(args []string, stdout, stderr io.Writer) (code int) {
	o := cli.NewOutcome("shardtool inspect", args, stdout, stderr)
	defer func() { code = o.Finish(code) }()
	stdout = o.Stdout()
	fs := newFlags("inspect", "inspect DIR [--json] [--classes 10]\n\nSummarises DIR/meta.json: the format, image size and codec, each split's\nrecords, shards, bytes and skips, the train pixel mean, std and PCA, and\nthe first classes.\n\nExample:\n  shardtool inspect ./shards --classes 0\n\nExit codes: 0 done, 1 no readable meta.json, 2 usage (or a DIR that does not exist or is a file).", stdout, stderr)
	asJSON := fs.Bool("json", false, "print meta.json's summary as JSON")
	classes := fs.Int("classes", 10, "classes to list (0: all); --json always lists all")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return o.ParseFailed(fs, args, err)
	}
	o.JSON = *asJSON
	if err := oneDir(pos); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	if *classes < 0 {
		return o.Failf(cli.ExitUsage, "--classes %d: want 0 (all) or more", *classes)
	}
	var out bytes.Buffer
	code = inspectTo(&out, pos[0], *asJSON, *classes, o)
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return o.Fail(cli.ExitFailure, "writing the summary:", err)
	}
	return code
}

// inspectTo writes inspect's summary of dir into a buffer, which the
// caller writes out at once and so can tell a failed write.
func inspectTo(stdout *bytes.Buffer, dir string, asJSON bool, classes int, o *cli.Outcome) int {
	m, err := shards.ReadMeta(dir)
	if err != nil {
		return o.Fail(metaExit(err), err)
	}
	type splitSum struct {
		Records       int     `json:"records"`
		Skipped       int     `json:"skipped"`
		Shards        int     `json:"shards"`
		Bytes         int64   `json:"bytes"`
		BytesPerImage float64 `json:"bytes_per_image"`
		RatioToRaw    float64 `json:"ratio_to_raw"`
	}
	sum := map[string]splitSum{}
	raw := float64(m.Width * m.Height * m.Channels)
	for name, sp := range m.Splits {
		s := splitSum{Records: sp.Records, Skipped: sp.Skipped, Shards: len(sp.Shards)}
		for _, sh := range sp.Shards {
			s.Bytes += sh.Bytes
		}
		if s.Records > 0 {
			s.BytesPerImage = float64(s.Bytes) / float64(s.Records)
			s.RatioToRaw = s.BytesPerImage / raw
		}
		sum[name] = s
	}
	if asJSON {
		out := map[string]any{"dir": dir, "format_version": m.FormatVersion, "width": m.Width, "height": m.Height,
			"classes": len(m.Classes), "class_list": m.Classes, "splits": sum, "stats": m.Stats, "ingest": m.Ingest,
			"unfinished": nonNil(m.Unfinished)}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return cli.ExitOK
	}
	fmt.Fprintf(stdout, "%s: format v%d, %d×%d RGB, codec %s, %d classes\n", dir, m.FormatVersion, m.Width, m.Height, m.Ingest.Codec, len(m.Classes))
	for _, name := range slices.Sorted(maps.Keys(m.Splits)) {
		s := sum[name]
		fmt.Fprintf(stdout, "  %-5s %8d %-7s in %4d %-6s %6.1f MB, %8.0f B/image (%.3f of raw), %d skipped\n",
			name, s.Records, cli.Plural(s.Records, "record", "records"), s.Shards, cli.Plural(s.Shards, "shard,", "shards,"), float64(s.Bytes)/1e6, s.BytesPerImage, s.RatioToRaw, s.Skipped)
	}
	for _, name := range slices.Sorted(maps.Keys(m.Unfinished)) {
		fmt.Fprintf(stdout, "  %-5s unfinished: %s\n", name, cli.Printable(m.Unfinished[name]))
	}
	if st := m.Stats; st != nil {
		fmt.Fprintf(stdout, "  train pixel stats over %d pixels (0-255 units):\n", st.Pixels)
		fmt.Fprintf(stdout, "    mean RGB    %7.2f %7.2f %7.2f\n", st.Mean[0], st.Mean[1], st.Mean[2])
		fmt.Fprintf(stdout, "    std RGB     %7.2f %7.2f %7.2f\n", st.Std[0], st.Std[1], st.Std[2])
		// One line a component: its eigenvalue beside its eigenvector,
		// which meta.json stores as a column of pca_eigvec (read as rows,
		// the matrix would show three vectors that are not eigenvectors).
		fmt.Fprintf(stdout, "    PCA (eigenvalue, sqrt, unit eigenvector in RGB):\n")
		for j := 0; j < 3; j++ {
			fmt.Fprintf(stdout, "      %9.2f  %7.2f   (%6.3f %6.3f %6.3f)\n", st.PCAEigval[j], math.Sqrt(st.PCAEigval[j]), st.PCAEigvec[0][j], st.PCAEigvec[1][j], st.PCAEigvec[2][j])
		}
	}
	n := len(m.Classes)
	if classes > 0 {
		n = min(n, classes)
	}
	fmt.Fprintf(stdout, "  classes (%d of %d):\n", n, len(m.Classes))
	for _, c := range m.Classes[:n] {
		fmt.Fprintf(stdout, "    %4d %s %s\n", c.Index, cli.Printable(c.WNID), cli.Printable(c.Name))
	}
	return cli.ExitOK
}

func grid(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("grid", "grid DIR [--n 64] [--out grid.png] [--split train] [--tile 128]\n\nDraws a contact sheet: the first N records of a split, each tile captioned\nwith its label and class name, so a person can see that pixels and labels agree.\n\nExample:\n  shardtool grid ./shards --n 64 --out grid.png\n\nExit codes: 0 written, 1 failed or interrupted, 2 usage (or a DIR that does not exist or is a file).", stdout, stderr)
	n := fs.Int("n", 64, "records to draw")
	out := fs.String("out", "grid.png", "PNG to write")
	split := fs.String("split", "train", "split to draw from")
	tile := fs.Int("tile", 128, "tile side in pixels (records are scaled to fit)")
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return cli.ExitCode(err)
	}
	if err := oneDir(pos); err != nil {
		fmt.Fprintln(stderr, "shardtool grid:", err)
		return cli.ExitUsage
	}
	// The sheet is one image in memory: bound it (4096 tiles of 128 px
	// are 256 MB) rather than let the runtime die out of memory.
	const maxTile, maxPixels = 1024, 1 << 26
	switch {
	case !strings.EqualFold(filepath.Ext(*out), ".png"):
		fmt.Fprintf(stderr, "shardtool grid: --out %s: the sheet is a PNG; name it .png\n", *out)
		return cli.ExitUsage
	case *n <= 0:
		fmt.Fprintf(stderr, "shardtool grid: --n %d: want at least 1 record\n", *n)
		return cli.ExitUsage
	case *tile < 16 || *tile > maxTile:
		fmt.Fprintf(stderr, "shardtool grid: --tile %d: want 16 to %d pixels\n", *tile, maxTile)
		return cli.ExitUsage
	}
	// Before the drawing, which can take a while: a sheet with nowhere
	// to go is known now.
	if fi, err := os.Stat(filepath.Dir(*out)); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "shardtool grid: --out %s: its folder %s is not there, or not a folder\n", *out, filepath.Dir(*out))
		return cli.ExitFailure
	}
	dir := pos[0]
	// An ingest rewriting the shards would show as damage, or draw
	// records of two runs on one sheet.
	lock, err := dirlock.AcquireShared(dir, "shardtool grid", shards.MetaFile)
	if err != nil {
		fmt.Fprintln(stderr, "shardtool grid:", err)
		return cli.ExitFailure
	}
	defer lock.Release()
	m, err := shards.ReadMeta(dir)
	if err != nil {
		fmt.Fprintln(stderr, "shardtool grid:", err)
		return metaExit(err)
	}
	if _, ok := m.Splits[*split]; !ok && *split != "train" && *split != "val" {
		fmt.Fprintf(stderr, "shardtool grid: --split %q: want train or val\n", *split)
		return cli.ExitUsage
	}
	// The sheet's size counts the records there are, not --n (which may
	// ask for more), and each tile's caption strip.
	want := min(*n, m.Splits[*split].Records)
	if w, h := sheetSize(want, *tile); int64(w)*int64(h) > maxPixels {
		fmt.Fprintf(stderr, "shardtool grid: %d records at --tile %d is a sheet of more than %d megapixels: draw fewer (--n) or smaller tiles\n", want, *tile, maxPixels>>20)
		return cli.ExitUsage
	}
	img, drawn, err := contactSheet(ctx, dir, m, *split, *n, *tile)
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "shardtool grid: interrupted; %s not written\n", *out)
		return cli.ExitFailure
	}
	if err != nil {
		fmt.Fprintln(stderr, "shardtool grid:", err)
		return cli.ExitFailure
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		fmt.Fprintln(stderr, "shardtool grid:", err)
		return cli.ExitFailure
	}
	if err := shards.WriteFileAtomic(*out, buf.Bytes()); err != nil {
		fmt.Fprintf(stderr, "shardtool grid: --out %s: %v\n", *out, err)
		return cli.ExitFailure
	}
	fmt.Fprintf(stdout, "wrote %s: %d %s records\n", *out, drawn, *split)
	if drawn < want {
		// Each shard holds what its entry says (checked before drawing),
		// so only a split total edited by hand gets here.
		fmt.Fprintf(stderr, "shardtool grid: note: drew %d of the %d records asked for, which meta.json lists: the shards hold fewer (shardtool verify %s names the fault)\n", drawn, want, dir)
	}
	return cli.ExitOK
}

// gridCols is the columns of a near-square grid of n tiles.
func gridCols(n int) int {
	cols := 1
	for cols*cols < n {
		cols++
	}
	return cols
}

// sheetSize is the pixel size of a sheet of n tiles, its empty cells and
// caption strips included.
func sheetSize(n, tile int) (w, h int) {
	cols := gridCols(n)
	rows := (n + cols - 1) / cols
	return cols * tile, rows * (tile + captionHeight)
}

// contactSheet draws the first n records of a split, each scaled to a
// tile with its label and class name underneath.
func contactSheet(ctx context.Context, dir string, m *shards.Meta, split string, n, tile int) (*image.RGBA, int, error) {
	paths := m.ShardPaths(dir, split)
	if len(paths) == 0 && m.Unfinished[split] != "" {
		return nil, 0, fmt.Errorf("%s/%s", dir, m.Missing(split))
	}
	if len(paths) == 0 {
		return nil, 0, fmt.Errorf("split %q has no shards in %s", split, dir)
	}
	n = min(n, m.Splits[split].Records)
	if n == 0 {
		return nil, 0, fmt.Errorf("split %q has no records", split)
	}
	// A shard copied over another passes every record CRC: the sheet
	// would show its records as the split's. Sizes and file CRCs against
	// meta.json tell it apart, as the pipeline does, for an index read
	// a shard.
	if err := pipeline.CheckShards(dir, m, split); err != nil {
		return nil, 0, err
	}
	cols := gridCols(n)
	const label = captionHeight
	w, h := sheetSize(n, tile)
	sheet := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.RGBA{32, 32, 32, 255}), image.Point{}, draw.Src)
	dec, err := shards.NewDecoder()
	if err != nil {
		return nil, 0, err
	}
	defer dec.Close()
	face, err := captionFace()
	if err != nil {
		return nil, 0, err
	}
	drawn := 0
	var rec shards.Record
	var buf, pix []byte
	for _, p := range paths {
		if drawn == n {
			break
		}
		r, err := shards.Open(p)
		if err != nil {
			return nil, 0, err
		}
		for i := 0; i < r.Len() && drawn < n; i++ {
			if err := ctx.Err(); err != nil {
				r.Close()
				return nil, 0, err
			}
			if buf, err = r.ReadRecord(i, &rec, buf); err != nil {
				r.Close()
				return nil, 0, err
			}
			// Its size is checked before it sizes the decode: a record
			// claiming 65535×65535 (a foreign or hand-made shard, its
			// checksums whole) would have grid allocate 12.9 GB.
			if err := m.CheckRecord(split, &rec); err != nil {
				r.Close()
				return nil, 0, fmt.Errorf("shard %s record %d: %w (shardtool verify names every such record)", r.Name(), i, err)
			}
			pix = append(pix[:0], make([]byte, rec.W*rec.H*3)...)
			if err := dec.Decode(pix, rec.Codec, rec.Payload, rec.W, rec.H); err != nil {
				r.Close()
				return nil, 0, fmt.Errorf("shard %s record %d: %w", r.Name(), i, err)
			}
			x0, y0 := (drawn%cols)*tile, (drawn/cols)*(tile+label)
			// Nearest-neighbour is enough for a sheet meant for eyes.
			for y := 0; y < tile; y++ {
				sy := y * rec.H / tile
				for x := 0; x < tile; x++ {
					sx := x * rec.W / tile
					o := (sy*rec.W + sx) * 3
					sheet.SetRGBA(x0+x, y0+y, color.RGBA{pix[o], pix[o+1], pix[o+2], 255})
				}
			}
			name := "?"
			if int(rec.Label) >= 0 && int(rec.Label) < len(m.Classes) {
				name = m.Classes[rec.Label].Name
				if name == "" {
					name = m.Classes[rec.Label].WNID
				}
			}
			drawCaption(sheet, face, x0, y0+tile, tile, fmt.Sprintf("%d %s", rec.Label, name))
			drawn++
		}
		r.Close()
	}
	return sheet, drawn, nil
}

// oneDir checks that the command line gave one DIR, and not an empty
// name (an unset shell variable), which a message could only name as "".
func oneDir(pos []string) error {
	if len(pos) != 1 {
		return fmt.Errorf("want one DIR, got %d (see --help)", len(pos))
	}
	if pos[0] == "" {
		return errors.New("DIR is an empty name (an unset variable?): give the shard directory (see --help)")
	}
	return nil
}

// metaExit is the exit code of ReadMeta's err: a DIR that names no folder
// is a mistake in the command (2), anything else a failure (1).
func metaExit(err error) int {
	if errors.Is(err, shards.ErrNoDir) {
		return cli.ExitUsage
	}
	return cli.ExitFailure
}
