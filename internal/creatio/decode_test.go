// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// createBody is a create/recreate body as Creatio 8.1 writes it
// (docs/CREATIO-PROTOCOL.md §5.1): one credentials object in an array, property
// names unquoted; about 1 KB.
const createBody = `[{FolderIds:["INBOX","Sent Items","Archive/2025/Customers","Projects/Creatio \"EL\" migration"],PersonalMetrics:false,UseFullEmail:true,` +
	`BpmUserTimeZone:"Russian Standard Time",FeatureValues:{MarkEmailsAsSynchronized:true,UseBinaryData:false},` +
	`BpmUser:"Supervisor",BpmEndpoint:"https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",` +
	`BpmUserWorkspace:"Default",SenderEmailAddress:"john.doe@example.com",ServiceUrl:"imap.example.com",Port:993,` +
	`UseOAuth:false,IsAutodiscover:false,AutodiscoverRedirectUrl:"",Context:"{UserRequested:true,HasError:false}",` +
	`ServerTypeId:"844f0837-eaa0-4f40-b965-71f5db9eae6e",UseSsl:true,SubscriptionTtl:0,FolderClassName:null,` +
	`SecureOption:2,Id:"1111aaaa-2222-4bbb-8ccc-333333dddddd",UserName:"john.doe@example.com",` +
	`Password:"p\"a:s{s}\\w,o'rd",AccessToken:"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSIsImlzcyI6Imh0dHBzOi8vc3RzLndpbmRvd3MubmV0LyIsInNjcCI6IkVXUy5BY2Nlc3NBc1VzZXIuQWxsIn0.c2lnbmF0dXJl"}]`

func TestToStandard(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"standard untouched", `{"a":1,"b":[true,null,"x"]}`, `{"a":1,"b":[true,null,"x"]}`},
		{"bare keys", `{a:1,B_c$9:2}`, `{"a":1,"B_c$9":2}`},
		{"nested and spaced", "{ a : { b : [ {c:1} ] } }", `{ "a" : { "b" : [ {"c":1} ] } }`},
		{"key-like string values untouched", `{a:"b:c,d:{e}",f:"{UserRequested:true}"}`, `{"a":"b:c,d:{e}","f":"{UserRequested:true}"}`},
		{"escaped quote in value", `{Password:"a\"b:c}"}`, `{"Password":"a\"b:c}"}`},
		{"escapes kept", `{a:"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`, `{"a":"\\\/\b\f\n\r\t\u00e9\uD83D\uDE00"}`},
		{"keywords as keys", `{true:1,null:2,false:3}`, `{"true":1,"null":2,"false":3}`},
		{"unicode key", `{Имя:1}`, `{"Имя":1}`},
		{"digit-leading key", `{1a:1}`, `{"1a":1}`},
		{"dotted and dashed keys", `{Email.Sync-V2:true,1111aaaa-2222-4bbb-8ccc-333333dddddd:1}`,
			`{"Email.Sync-V2":true,"1111aaaa-2222-4bbb-8ccc-333333dddddd":1}`},
		{"single-quoted string", `{a:'x"y\'z'}`, `{"a":"x\"y'z"}`},
		{"single-quoted key", `{'a b':1}`, `{"a b":1}`},
		{"backslash-quote in double quotes", `{"a":"it\'s"}`, `{"a":"it's"}`},
		{"bom", "\xEF\xBB\xBF{a:1}", `{"a":1}`},
		{"bom standard", "\xEF\xBB\xBF[1]", `[1]`},
		{"trailing comma array", `[1,2,]`, `[1,2]`},
		{"trailing comma object", "{a:1,\n}", "{\"a\":1\n}"},
		{"trailing commas nested", `[{a:[1,],},]`, `[{"a":[1]}]`},
		{"empty containers", `[{},[],{a:[]}]`, `[{},[],{"a":[]}]`},
		{"top-level string", `"https://crm/x"`, `"https://crm/x"`},
		{"numbers", `[0,-1,1.5,2e10,-0.0E-3]`, `[0,-1,1.5,2e10,-0.0E-3]`},
		{"whitespace around", " \r\n\t[1] \n", " \r\n\t[1] \n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := toStandard([]byte(tt.in))
			if err != nil {
				t.Fatalf("toStandard(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Fatalf("toStandard(%q)\n got %s\nwant %s", tt.in, got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatalf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestToStandardNoCopyForStandardJSON(t *testing.T) {
	in := []byte(`{"a":[1,2,{"b":"c"}]}`)
	got, err := toStandard(in)
	if err != nil {
		t.Fatal(err)
	}
	if &got[0] != &in[0] {
		t.Fatal("standard JSON was copied")
	}
}

func TestToStandardErrors(t *testing.T) {
	tests := []struct {
		in      string
		offset  int64
		contain string
	}{
		{`{a 1}`, 3, `expected ':' after property name, found '1'`},
		{`{a:1 b:2}`, 5, `expected ',' or '}', found 'b'`},
		{`[1 2]`, 3, `expected ',' or ']', found '2'`},
		{`{a:1]`, 4, `expected ',' or '}', found ']'`},
		{`[1}`, 2, `expected ',' or ']'`},
		{`{a:}`, 3, `expected a value, found '}'`},
		{`{:1}`, 1, `expected property name, found ':'`},
		{`{a+b:1}`, 2, `expected ':' after property name, found '+'`},
		{`{a b:1}`, 3, `expected ':' after property name, found 'b'`},
		{`{a:b}`, 3, `expected a value, found 'b'`},
		{`{a:NaN}`, 3, `expected a value, found 'N'`},
		{`{a:tru}`, 3, `expected a value`},
		{`{a:truex}`, 3, `unquoted text`},
		{`{a:01}`, 3, `invalid number`},
		{`{a:1.}`, 3, `invalid number`},
		{`{a:+1}`, 3, `expected a value, found '+'`},
		{`{a:.5}`, 3, `expected a value, found '.'`},
		{`{a:1e}`, 3, `invalid number`},
		{`{a:"x`, 3, `unterminated string`},
		{`{a:"x\`, 5, `unterminated string`},
		{`{a:"\x"}`, 4, `invalid escape 'x'`},
		{`{a:"\u12g4"}`, 4, `invalid \u escape`},
		{"{a:\"x\ny\"}", 5, `control character 0x0a in string`},
		{`[1,,2]`, 3, `expected a value, found ','`},
		{`[,]`, 1, `expected a value, found ','`},
		{`{,}`, 1, `expected property name, found ','`},
		{`[1]]`, 3, `unexpected ']' after top-level value`},
		{`{} {}`, 3, `unexpected '{' after top-level value`},
		{`[1,2`, 4, `unexpected end of input`},
		{`{a:1,`, 5, `unexpected end of input`},
		{`/* c */[1]`, 0, `expected a value, found '/'`},
		{"\x00", 0, `found byte 0x00`},
		{"\xEF\xBB\xBF}", 3, `expected a value, found '}'`},
		{strings.Repeat("[", maxDepth+1), maxDepth, `nesting deeper than 512 levels`},
	}
	for _, tt := range tests {
		_, err := toStandard([]byte(tt.in))
		var re *RequestError
		if !errors.As(err, &re) {
			t.Errorf("toStandard(%q) = %v, want *RequestError", tt.in, err)
			continue
		}
		if re.Offset != tt.offset || !strings.Contains(re.Msg, tt.contain) {
			t.Errorf("toStandard(%q) = %q (offset %d), want offset %d and %q", tt.in, re.Msg, re.Offset, tt.offset, tt.contain)
		}
		if !strings.Contains(re.Msg, "at byte ") {
			t.Errorf("message %q does not say the offset", re.Msg)
		}
	}
}

func TestDecodeCreateBody(t *testing.T) {
	list, err := DecodeCredentialsList([]byte(createBody))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("got %d credentials, want 1", len(list))
	}
	c := list[0]
	two := FlexInt(2)
	want := SynchronizationCredentials{
		ID:                 "1111aaaa-2222-4bbb-8ccc-333333dddddd",
		UserName:           "john.doe@example.com",
		Password:           `p"a:s{s}\w,o'rd`,
		AccessToken:        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL291dGxvb2sub2ZmaWNlMzY1LmNvbSIsImlzcyI6Imh0dHBzOi8vc3RzLndpbmRvd3MubmV0LyIsInNjcCI6IkVXUy5BY2Nlc3NBc1VzZXIuQWxsIn0.c2lnbmF0dXJl",
		BpmUser:            "Supervisor",
		BpmEndpoint:        "https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail",
		BpmUserWorkspace:   "Default",
		SenderEmailAddress: "john.doe@example.com",
		ServiceURL:         "imap.example.com",
		Port:               993,
		Context:            "{UserRequested:true,HasError:false}",
		ServerTypeID:       ServerTypeIMAP,
		UseSSL:             true,
		SecureOption:       &two,
		FolderIDs:          []string{"INBOX", "Sent Items", "Archive/2025/Customers", `Projects/Creatio "EL" migration`},
		UseFullEmail:       true,
		BpmUserTimeZone:    "Russian Standard Time",
		FeatureValues:      map[string]FlexBool{"MarkEmailsAsSynchronized": true, "UseBinaryData": false},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", c, want) // String() redacts; compare fields below for detail
	}
	if c.Password != want.Password {
		t.Fatal("password mismatch")
	}
}

func TestDecode(t *testing.T) {
	type flex struct {
		N FlexInt  `json:"N"`
		B FlexBool `json:"B"`
		S string   `json:"S"`
	}
	tests := []struct {
		name string
		in   string
		want flex
	}{
		{"standard", `{"N":1,"B":true,"S":"x"}`, flex{1, true, "x"}},
		{"case-insensitive names", `{n:1,b:true,s:"x"}`, flex{1, true, "x"}},
		{"number as string", `{N:"993",B:"true"}`, flex{N: 993, B: true}},
		{"padded string number", `{N:" 42 "}`, flex{N: 42}},
		{".NET True", `{B:"True"}`, flex{B: true}},
		{"FALSE string", `{B:"FALSE"}`, flex{}},
		{"bool as 0/1", `{B:1}`, flex{B: true}},
		{"bool as \"0\"", `{B:"0"}`, flex{}},
		{"integral float", `{N:993.0}`, flex{N: 993}},
		{"exponent", `{N:1e3}`, flex{N: 1000}},
		{"nulls", `{N:null,B:null,S:null}`, flex{}},
		{"empty strings", `{N:"",B:""}`, flex{}},
		{"unicode escape", `{S:"caf\u00e9 \ud83d\ude00"}`, flex{S: "café 😀"}},
		{"escaped number string", `{N:"\u0039"}`, flex{N: 9}},
		{"unknown field ignored", `{X:{y:[1,2]},S:"s"}`, flex{S: "s"}},
		{"bom and trailing comma", "\xEF\xBB\xBF{N:7,}", flex{N: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got flex
			if err := Decode([]byte(tt.in), &got); err != nil {
				t.Fatalf("Decode(%s): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Decode(%s) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		into  func() any
		field string
		msg   string
		is    error
	}{
		{"empty", ``, creds, "", "creatio: empty body", ErrEmptyBody},
		{"blank", " \r\n ", creds, "", "creatio: empty body", ErrEmptyBody},
		{"bom only", "\xEF\xBB\xBF", creds, "", "creatio: empty body", ErrEmptyBody},
		{"not json", `hello`, creds, "", "creatio: invalid JSON at byte 0: expected a value, found 'h'", nil},
		{"html", `<html>`, creds, "", "creatio: invalid JSON at byte 0: expected a value, found '<'", nil},
		{"object for array", `{Id:"x"}`, list, "", "creatio: body must be a JSON array, got object", nil},
		{"array for object", `[{Id:"x"}]`, creds, "", "creatio: body must be a JSON object, got array", nil},
		{"string for array", `"x"`, list, "", "creatio: body must be a JSON array, got string", nil},
		{"port not a number", `{Port:"abc"}`, creds, "Port", `creatio: field Port: cannot use string "abc" as integer`, nil},
		{"port fraction", `{Port:9.5}`, creds, "Port", `creatio: field Port: cannot use number 9.5 as integer`, nil},
		{"port bool", `{Port:true}`, creds, "Port", `creatio: field Port: cannot use boolean true as integer`, nil},
		{"port object", `{Port:{}}`, creds, "Port", `creatio: field Port: cannot use object as integer`, nil},
		{"bool yes", `{UseSsl:"yes"}`, creds, "UseSsl", `creatio: field UseSsl: cannot use string "yes" as boolean`, nil},
		{"bool 2", `{UseSsl:2}`, creds, "UseSsl", `creatio: field UseSsl: cannot use number 2 as boolean`, nil},
		{"string field number", `{UserName:5}`, creds, "UserName", `creatio: field UserName: cannot use number as string`, nil},
		{"folder ids object", `{FolderIds:{}}`, creds, "FolderIds", `creatio: field FolderIds: cannot use object as JSON array`, nil},
		// encoding/json does not put map keys in the path.
		{"feature value", `{FeatureValues:{UseBinaryData:"maybe"}}`, creds, "FeatureValues",
			`creatio: field FeatureValues: cannot use string "maybe" as boolean`, nil},
		{"nested in list", `[{Port:"x"}]`, list, "Port", `creatio: field Port: cannot use string "x" as integer`, nil},
		{"element type", `[1]`, ids, "", `creatio: body: cannot use number as string`, nil},
		{"float overflow", `[1e700]`, func() any { return new([]float64) }, "", `creatio: body: cannot use number 1e700 as number (out of range)`, nil},
		{"empty list", `[]`, nil, "", "creatio: body must contain at least one credentials object", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.into == nil {
				_, err = DecodeCredentialsList([]byte(tt.in))
			} else {
				err = Decode([]byte(tt.in), tt.into())
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want *RequestError", err, err)
			}
			if re.Error() != tt.msg || re.Field != tt.field {
				t.Fatalf("err = %q field %q, want %q field %q", re.Error(), re.Field, tt.msg, tt.field)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tt.is)
			}
		})
	}
}

func creds() any { return new(SynchronizationCredentials) }
func list() any  { return new([]SynchronizationCredentials) }
func ids() any   { return new([]string) }

func TestDecodeIDs(t *testing.T) {
	got, err := DecodeIDs([]byte(` ["1111AAAA-2222-4BBB-8CCC-333333DDDDDD", "", "{1111aaaa-2222-4bbb-8ccc-333333dddddd}", " other "]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1111aaaa-2222-4bbb-8ccc-333333dddddd", "other"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if _, err := DecodeIDs([]byte(`{}`)); err == nil {
		t.Fatal("object accepted as id list")
	}
}

func TestDecodeInvalidTarget(t *testing.T) {
	var re *RequestError
	if err := Decode([]byte(`{}`), SynchronizationCredentials{}); err == nil || errors.As(err, &re) {
		t.Fatalf("non-pointer target: err = %v, want a non-request error", err)
	}
}

// FuzzDecode checks that the converter never panics and that whatever it
// accepts is valid JSON that encoding/json agrees with.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		createBody, `{a:1}`, `[1,2,]`, "\xEF\xBB\xBF{'a':'b\\'c'}", `{"a":"\u00e9"}`, `{a:{b:[{c:null}]},}`,
		`"x"`, `-0.5e+3`, `{Password:"a\"b:c}",Context:"{UserRequested:true,HasError:false}"}`, `[{},[]]`,
		`{Имя:true}`, `[1,,]`, `{a 1}`, "{a:\"\n\"}", `{'a"':'"'}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		std, err := toStandard(data)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || (re.Offset >= 0 && re.Offset > int64(len(data))) {
				t.Fatalf("bad error %v for %q", err, data)
			}
			return
		}
		if !json.Valid(std) {
			t.Fatalf("toStandard(%q) = %q: not valid JSON", data, std)
		}
		if json.Valid(data) {
			var a, b any
			if json.Unmarshal(data, &a) == nil && json.Unmarshal(std, &b) == nil && !reflect.DeepEqual(a, b) {
				t.Fatalf("standard JSON %q changed meaning: %v vs %v", data, a, b)
			}
		}
		var v any
		if err := Decode(data, &v); err != nil {
			// Only a type error (a number beyond float64) may remain.
			var re *RequestError
			var te *json.UnmarshalTypeError
			if !errors.As(err, &re) || re.Offset != -1 || !errors.As(err, &te) {
				t.Fatalf("Decode failed after toStandard succeeded: %v", err)
			}
		}
		var c SynchronizationCredentials
		if Decode(data, &c) == nil {
			_, _ = c.Mailbox() // must not panic
		}
	})
}

func BenchmarkDecodeCreate(b *testing.B) {
	body := []byte(createBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCredentialsList(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStandard(b *testing.B) {
	list, err := DecodeCredentialsList([]byte(createBody))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(list)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeCredentialsList(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToStandard(b *testing.B) {
	body := []byte(createBody)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := toStandard(body); err != nil {
			b.Fatal(err)
		}
	}
}
