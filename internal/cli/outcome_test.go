package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"testing"
)

func TestJSONAsked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--json"}, true},
		{[]string{"-json"}, true},
		{[]string{"--json=true"}, true},
		{[]string{"--json=false"}, false},
		{[]string{"--json", "--json=0"}, false},
		{[]string{"--json=0", "--json"}, true},
		{[]string{"--json=maybe"}, false},
		{[]string{"--jsonl"}, false},
		{[]string{"json"}, false},
		{[]string{"---json"}, false},
		{[]string{"--", "--json"}, false}, // a file named --json
		{[]string{"a.JPEG", "--json"}, true},
	} {
		if got := JSONAsked(c.args); got != c.want {
			t.Errorf("JSONAsked(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

// TestJSONAskedKnowingFlags: with the flag set, a flag's value that reads
// like --json is a value, as fs.Parse takes it.
func TestJSONAskedKnowingFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.String("out", "", "")
	fs.Int("n", 0, "")
	fs.Bool("quiet", false, "")
	fs.Bool("json", false, "")
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--out", "--json"}, false},
		{[]string{"--out", "--json", "--json"}, true},
		{[]string{"--out=x", "--json"}, true},
		{[]string{"--quiet", "--json"}, true},
		{[]string{"--n", "3", "--json", "--bogus"}, true},
		{[]string{"--bogus", "--json"}, true}, // an unknown flag takes no value
		{[]string{"DIR", "--out", "--json"}, false},
		{[]string{"DIR", "--json", "--n"}, true},
		{[]string{"-", "--json"}, true},
	} {
		if got := jsonAsked(fs, c.args); got != c.want {
			t.Errorf("jsonAsked(fs, %q) = %v, want %v", c.args, got, c.want)
		}
	}
}

func TestOutcomeFinish(t *testing.T) {
	for _, c := range []struct {
		name    string
		json    bool
		printed string // what the command wrote to stdout itself
		fail    bool
		code    int
		want    string // stdout after Finish
	}{
		{"success", true, "{}\n", false, ExitOK, "{}\n"},
		{"failure", true, "", true, ExitFailure, `{"command":"tool","error":"no such shard \"x\"","exit_code":1}` + "\n"},
		{"failure without --json", false, "", true, ExitFailure, ""},
		{"output begun", true, "{\"a\":1}\n", true, ExitDamaged, "{\"a\":1}\n"},
		{"no reason kept", true, "", false, ExitUsage, `{"command":"tool","error":"exit code 2 (the reason is on stderr)","exit_code":2}` + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var so, se bytes.Buffer
			o := NewOutcome("tool", nil, &so, &se)
			o.JSON = c.json
			o.Stdout().Write([]byte(c.printed))
			code := c.code
			if c.fail {
				code = o.Failf(c.code, "no such shard %q", "x")
				if se.String() != "tool: no such shard \"x\"\n" {
					t.Errorf("stderr %q", se.String())
				}
			}
			if got := o.Finish(code); got != c.code {
				t.Errorf("Finish returned %d, want %d", got, c.code)
			}
			if so.String() != c.want {
				t.Errorf("stdout %q, want %q", so.String(), c.want)
			}
			if c.want != "" && c.printed == "" && !json.Valid(so.Bytes()) {
				t.Errorf("not JSON: %s", so.String())
			}
		})
	}
}
