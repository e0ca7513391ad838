// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

func TestBase64Decoding(t *testing.T) {
	for in, want := range map[string]string{
		`"aGVsbG8="`:         "hello",
		`"aGVsbG8"`:          "hello",           // unpadded, as .NET also reads it
		`"aGVs\r\nbG8="`:     "hello",           // line breaks
		`"YT9i\/Yz8="`:       "a?b\xfd\x8c\xfc", // JSON-escaped /
		`""`:                 "",
		`"YWJjZA=="`:         "abcd",
		`"YWJjZGVmZ2hpams="`: "abcdefghijk",
	} {
		var b Base64
		if err := json.Unmarshal([]byte(in), &b); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", in, b, err, want)
		}
	}
	var b Base64 = Base64("x")
	if err := json.Unmarshal([]byte("null"), &b); err != nil || b != nil {
		t.Errorf("null: %q %v", b, err)
	}
	for _, bad := range []string{`"%%%"`, `12`, `"aGVsbG8=x"`} {
		var b Base64
		if err := json.Unmarshal([]byte(bad), &b); err == nil {
			t.Errorf("%s accepted as %q", bad, b)
		}
	}
	out, _ := json.Marshal(Attachment{Data: Base64("hello")})
	if !strings.Contains(string(out), `"Base64Data":"aGVsbG8="`) {
		t.Errorf("marshal: %s", out)
	}
}

// Decoding an attachment allocates about its decoded size, not the quoted
// text's too.
func TestBase64DecodeAllocations(t *testing.T) {
	raw := bytes.Repeat([]byte{0xA5}, 3<<20)
	body := []byte(`{"Base64Data":"` + base64.StdEncoding.EncodeToString(raw) + `"}`)
	var a Attachment
	allocs := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = json.Unmarshal(body, &a)
		}
	}).AllocedBytesPerOp()
	if !bytes.Equal(a.Data, raw) {
		t.Fatal("decoded data differs")
	}
	if allocs > int64(len(raw))*5/4 {
		t.Errorf("decoding %d bytes allocated %d", len(raw), allocs)
	}
}
