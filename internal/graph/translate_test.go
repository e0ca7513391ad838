// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestTranslateIDsChunks(t *testing.T) {
	var sizes []int
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1.0/users/u@x.com/translateExchangeIds" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		var in struct {
			InputIDs []string `json:"inputIds"`
			From     string   `json:"sourceIdType"`
			To       string   `json:"targetIdType"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.From != "ewsId" || in.To != "restImmutableEntryId" {
			t.Errorf("body %+v, %v", in, err)
		}
		sizes = append(sizes, len(in.InputIDs))
		var out []any
		for _, id := range in.InputIDs {
			if id == "bad" {
				out = append(out, map[string]any{"sourceId": id, "errorDetails": map[string]any{"code": "ErrorInvalidIdMalformed"}})
				continue
			}
			out = append(out, map[string]any{"sourceId": id, "targetId": "R-" + id})
		}
		// An entry nobody asked for is ignored.
		out = append(out, map[string]any{"sourceId": "intruder", "targetId": "x"})
		writeJSON(w, 200, map[string]any{"value": out})
	}))
	ids := []string{"bad", "e0", "e0"}
	for i := 1; i < 2500; i++ {
		ids = append(ids, fmt.Sprintf("e%d", i))
	}
	m, err := c.TranslateIDs(t.Context(), "u@x.com", ids, IDTypeEWS, IDTypeRESTImmutable)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[1000 1000 501]" {
		t.Fatalf("requests of %v ids", sizes)
	}
	if len(m) != 2500 || m["e0"] != "R-e0" || m["e2499"] != "R-e2499" {
		t.Fatalf("%d translations", len(m))
	}
	if _, ok := m["bad"]; ok {
		t.Error("a failed id is in the result")
	}
	if _, ok := m["intruder"]; ok {
		t.Error("an id not asked for is in the result")
	}

	sizes = nil
	if m, err := c.TranslateIDs(t.Context(), "u@x.com", nil, IDTypeEWS, IDTypeREST); err != nil || len(m) != 0 || sizes != nil {
		t.Fatalf("no ids: %v %v %v", m, err, sizes)
	}
	_, err = c.TranslateIDs(t.Context(), "u@x.com", ids, "hexEntryId", IDTypeREST)
	requireClass(t, err, mail.ClassInternal)
}
