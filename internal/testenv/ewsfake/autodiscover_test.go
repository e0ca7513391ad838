// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func adPost(t *testing.T, s *Server, path, body string) *node {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.BaseURL()+path, strings.NewReader(body))
	mustOK(t, err)
	req.SetBasicAuth(alice, "pw-alice")
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	mustOK(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	mustOK(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	n, err := parseXML(bytes.NewReader(b))
	mustOK(t, err)
	return n
}

func TestAutodiscoverPOX(t *testing.T) {
	s, _ := newFake(t, Options{Backends: 3})
	pox := func(email string) *node {
		return adPost(t, s, "/Autodiscover/Autodiscover.xml", `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="`+nsPOXReq+
			`"><Request><EMailAddress>`+email+`</EMailAddress><AcceptableResponseSchema>`+nsPOXResp2+`</AcceptableResponseSchema></Request></Autodiscover>`)
	}
	root := pox(alice)
	resp := root.child(nsPOXResp2, "Response")
	if !root.is(nsPOXResp, "Autodiscover") || resp == nil {
		t.Fatalf("response %s/%s", root.space, root.local)
	}
	found := map[string]*node{}
	for _, p := range resp.child(nsPOXResp2, "Account").children(nsPOXResp2, "Protocol") {
		found[p.child(nsPOXResp2, "Type").value()] = p
	}
	for _, typ := range []string{"EXCH", "EXPR"} {
		if found[typ] == nil || found[typ].child(nsPOXResp2, "EwsUrl").value() != s.URL() {
			t.Errorf("protocol %s: %v", typ, found[typ])
		}
	}
	if g := found["EXPR"].child(nsPOXResp2, "GroupingInformation").value(); g == "" {
		t.Errorf("no GroupingInformation")
	}

	s.SetAutodiscoverRedirect("old@ewsfake.test", alice)
	acct := pox("old@ewsfake.test").child(nsPOXResp2, "Response").child(nsPOXResp2, "Account")
	if acct.child(nsPOXResp2, "Action").value() != "redirectAddr" || acct.child(nsPOXResp2, "RedirectAddr").value() != alice {
		t.Errorf("redirect: %v", kidNames(acct))
	}
	e := pox("nobody@ewsfake.test").child(nsPOXResp, "Response").child(nsPOXResp, "Error")
	if e.child(nsPOXResp, "ErrorCode").value() != "500" {
		t.Errorf("unknown address: %v", kidNames(e))
	}
}

func TestAutodiscoverSOAP(t *testing.T) {
	s, _ := newFake(t, Options{Backends: 3})
	s.SetAutodiscoverRedirect("moved@ewsfake.test", "https://elsewhere.example/autodiscover/autodiscover.svc")
	body := `<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="` + nsSOAP + `" xmlns:a="` + nsAD + `" xmlns:wsa="` + nsWSA + `">` +
		`<soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion>` +
		`<wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>` +
		`<wsa:To>` + s.BaseURL() + `/autodiscover/autodiscover.svc</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage>` +
		`<a:Request><a:Users><a:User><a:Mailbox>` + alice + `</a:Mailbox></a:User><a:User><a:Mailbox>nobody@ewsfake.test</a:Mailbox></a:User>` +
		`<a:User><a:Mailbox>moved@ewsfake.test</a:Mailbox></a:User></a:Users><a:RequestedSettings>` +
		`<a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting><a:Setting>GroupingInformation</a:Setting>` +
		`<a:Setting>UserDisplayName</a:Setting><a:Setting>CasVersion</a:Setting><a:Setting>NoSuchSetting</a:Setting>` +
		`</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>`
	env := adPost(t, s, "/autodiscover/autodiscover.svc", body)
	users := path(env, "Body", "GetUserSettingsResponseMessage", "Response", "UserResponses").kids
	if len(users) != 3 {
		t.Fatalf("%d user responses", len(users))
	}
	settings := map[string]string{}
	for _, us := range path(users[0], "UserSettings").kids {
		settings[path(us, "Name").value()] = path(us, "Value").value()
	}
	if settings["ExternalEwsUrl"] != s.URL() || settings["InternalEwsUrl"] != s.URL() || settings["UserDisplayName"] != "alice" ||
		settings["CasVersion"] != "15.01.2507.006" || settings["GroupingInformation"] == "" {
		t.Errorf("settings %v", settings)
	}
	if path(users[0], "UserSettingErrors", "UserSettingError", "SettingName").value() != "NoSuchSetting" {
		t.Errorf("setting errors: %v", kidNames(path(users[0], "UserSettingErrors")))
	}
	if path(users[1], "ErrorCode").value() != "InvalidUser" {
		t.Errorf("unknown user: %s", path(users[1], "ErrorCode").value())
	}
	if path(users[2], "ErrorCode").value() != "RedirectUrl" || !strings.HasPrefix(path(users[2], "RedirectTarget").value(), "https://elsewhere") {
		t.Errorf("redirect: %v", kidNames(users[2]))
	}
}
