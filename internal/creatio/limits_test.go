// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// A megabyte of empty objects must be refused while scanning, before
// encoding/json builds a struct for each (it took ~1 GB before the limits).
func TestDecodeLimitsRefuseBeforeAllocating(t *testing.T) {
	body := []byte("[" + strings.Repeat("{},", 1<<20/3) + "{}]")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecodeCredentialsList(body)
	runtime.ReadMemStats(&after)
	var re *RequestError
	if !errors.As(err, &re) || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want a *RequestError wrapping ErrTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("decoding allocated %d bytes before refusing", grew)
	}
}

func TestDecodeLimits(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		ok   bool
	}{
		{"values at limit", `[1,2,3]`, Limits{MaxValues: 4}, true},
		{"values over limit", `[1,2,3,4]`, Limits{MaxValues: 4}, false},
		{"containers over limit", `[[],[],{}]`, Limits{MaxContainers: 3}, false},
		{"containers at limit", `[[],{}]`, Limits{MaxContainers: 3}, true},
		{"top-level elements over limit", `[{a:[1,2,3]},{},{}]`, Limits{MaxElements: 2}, false},
		{"nested elements do not count as top-level", `[{a:[1,2,3,4,5]}]`, Limits{MaxElements: 2}, true},
		{"unquoted keys counted like values", `{a:1,b:2}`, Limits{MaxValues: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			err := DecodeLimited([]byte(tt.in), &v, tt.lim)
			if tt.ok != (err == nil) {
				t.Fatalf("DecodeLimited(%s, %+v) = %v, want ok=%v", tt.in, tt.lim, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestDecodeIDsLimits(t *testing.T) {
	many := make([]string, MaxIDsPerRequest+1)
	for i := range many {
		many[i] = `"x"`
	}
	if _, err := DecodeIDs([]byte("[" + strings.Join(many, ",") + "]")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d ids: err = %v, want ErrTooLarge", len(many), err)
	}
	for _, bad := range []string{
		`["` + strings.Repeat("a", MaxIDLength+1) + `"]`,
		`["a\u0000b"]`,
		`["a\u0007"]`,
		"[\"\xff\xfe\"]",
	} {
		_, err := DecodeIDs([]byte(bad))
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("DecodeIDs(%.40q) = %v, want a *RequestError", bad, err)
			continue
		}
		if strings.Contains(re.Msg, "aaaa") || strings.ContainsRune(re.Msg, 0) {
			t.Errorf("error echoes the id: %q", re.Msg)
		}
	}
	if ids, err := DecodeIDs([]byte(`["` + strings.Repeat("a", MaxIDLength) + `", "Ünïcode-id"]`)); err != nil || len(ids) != 2 {
		t.Fatalf("valid ids refused: %v %v", ids, err)
	}
}

func TestCredentialsIDChecked(t *testing.T) {
	c := SynchronizationCredentials{ID: "bad\u0000id", ServerTypeID: ServerTypeIMAP, ServiceURL: "imap.example.com"}
	_, err := c.Mailbox()
	var re *RequestError
	if !errors.As(err, &re) || re.Field != "Id" {
		t.Fatalf("Mailbox() = %v, want a *RequestError for Id", err)
	}
}

func TestDecodeBadBase64IsRequestError(t *testing.T) {
	var cmd SendCommand
	err := Decode([]byte(`{"Email":{"Attachments":[{"Name":"a.pdf","Base64Data":"%%%not base64"}]}}`), &cmd)
	var re *RequestError
	if !errors.As(err, &re) || re.Field != "Base64Data" {
		t.Fatalf("err = %#v, want a *RequestError for Base64Data", err)
	}
}
