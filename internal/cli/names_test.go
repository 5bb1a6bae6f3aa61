package cli

import "testing"

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"train/n01/a.JPEG", "train/n01/a.JPEG"},
		{"with space/é.JPEG", "with space/é.JPEG"},
		{"-n01/--help.JPEG", "-n01/--help.JPEG"},
		{"broken\xffname.JPEG", `"broken\xffname.JPEG"`},
		{"two\nlines.JPEG", `"two\nlines.JPEG"`},
		{"tab\there", `"tab\there"`},
	} {
		if got := Name(tc.in); got != tc.want {
			t.Errorf("Name(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
