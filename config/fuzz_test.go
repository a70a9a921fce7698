package config

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse: any input gives either a valid Config or Errors in which every
// problem names the file, has a message and a line within the document.
func FuzzParse(f *testing.F) {
	f.Add(DefaultFile())
	for _, tc := range errCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil {
			if c == nil {
				t.Fatal("nil Config without error")
			}
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a Config Validate refuses: %v", verr)
			}
			return
		}
		if c != nil {
			t.Fatal("Config with error")
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
		}
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, e := range errs {
			if e.File != "f.toml" || e.Msg == "" || e.Line < 0 || e.Line > lines {
				t.Fatalf("bad problem %+v in %d lines", *e, lines)
			}
		}
	})
}
