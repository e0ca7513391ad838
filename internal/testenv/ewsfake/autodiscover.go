// SPDX-License-Identifier: Apache-2.0

package ewsfake

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Autodiscover, both flavours, for the same mailboxes and with the same
// authentication as EWS:
//
//   - POX: POST /autodiscover/autodiscover.xml, the Outlook request schema; answers
//     Protocol entries EXCH and EXPR (with EwsUrl and GroupingInformation) and WEB.
//   - SOAP: POST /autodiscover/autodiscover.svc, GetUserSettings only.
//
// SetAutodiscoverRedirect makes an address answer with a redirect instead
// (RedirectAddress/redirectAddr or RedirectUrl/redirectUrl).

// SetAutodiscoverRedirect makes Autodiscover for smtp (which need not be a mailbox)
// redirect to target: a URL (containing "://") or another address. An empty target
// removes the redirect.
func (s *Server) SetAutodiscoverRedirect(smtp, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if target == "" {
		delete(s.adRedirects, strings.ToLower(smtp))
		return
	}
	s.adRedirects[strings.ToLower(smtp)] = target
}

// adLookup is what Autodiscover knows about an address.
type adLookup struct {
	mb          *mailbox
	redirect    string
	redirectURL bool
	backend     backend
}

func (s *Server) adResolve(email string) adLookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(strings.TrimSpace(email))
	if t, ok := s.adRedirects[key]; ok {
		return adLookup{redirect: t, redirectURL: strings.Contains(t, "://")}
	}
	mb := s.byAddr[key]
	if mb == nil {
		return adLookup{}
	}
	return adLookup{mb: mb, backend: s.backends[mb.backend]}
}

// serverVersionHex encodes the build the way POX ServerVersion does: 4 bits of
// structure version, 6 bits major, 6 bits minor, a flag bit, 15 bits build.
func serverVersionHex() string {
	v := uint32(7)<<28 | uint32(verMajor)<<22 | uint32(verMinor)<<16 | 1<<15 | uint32(verBuild)
	return fmt.Sprintf("%08X", v)
}

func (s *Server) servePOX(w http.ResponseWriter, r *http.Request, p principal) {
	s.count("autodiscover.xml")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.trace("autodiscover request", body)
	var email, schema string
	root, err := parseXML(bytes.NewReader(body))
	if err == nil && root.is(nsPOXReq, "Autodiscover") {
		req := root.child(nsPOXReq, "Request")
		email = req.child(nsPOXReq, "EMailAddress").value()
		schema = req.child(nsPOXReq, "AcceptableResponseSchema").value()
	}
	var b xw
	b.WriteString(xmlDecl)
	b.open("Autodiscover", "xmlns", nsPOXResp)
	switch lk := s.adResolve(email); {
	case email == "" || schema != nsPOXResp2:
		poxError(&b, "600", "Invalid Request")
	case lk.redirect != "":
		b.open("Response", "xmlns", nsPOXResp2)
		b.open("Account")
		b.leaf("AccountType", "email")
		if lk.redirectURL {
			b.leaf("Action", "redirectUrl")
			b.leaf("RedirectUrl", lk.redirect)
		} else {
			b.leaf("Action", "redirectAddr")
			b.leaf("RedirectAddr", lk.redirect)
		}
		b.end("Account")
		b.end("Response")
	case lk.mb == nil:
		poxError(&b, "500", "The email address can't be found.")
	default:
		s.poxSettings(&b, r, lk)
	}
	b.end("Autodiscover")
	s.trace("autodiscover response", b.Bytes())
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func poxError(b *xw, code, msg string) {
	b.open("Response")
	now := time.Now().UTC()
	b.open("Error", "Time", now.Format("15:04:05.0000000"), "Id", strconv.FormatUint(uint64(now.UnixNano()%4294967295), 10))
	b.leaf("ErrorCode", code)
	b.leaf("Message", msg)
	b.empty("DebugData")
	b.end("Error")
	b.end("Response")
}

func (s *Server) poxSettings(b *xw, r *http.Request, lk adLookup) {
	mb := lk.mb
	ews := s.URL()
	host := hostOf(s.baseURL)
	_, domain, _ := strings.Cut(mb.smtp, "@")
	b.open("Response", "xmlns", nsPOXResp2)
	b.open("User")
	b.leaf("DisplayName", mb.display)
	b.leaf("LegacyDN", legacyDN(mb))
	b.leaf("AutoDiscoverSMTPAddress", mb.smtp)
	b.leaf("DeploymentId", deploymentID)
	b.end("User")
	b.open("Account")
	b.leaf("AccountType", "email")
	b.leaf("Action", "settings")
	b.leaf("MicrosoftOnline", "False")
	b.open("Protocol")
	b.leaf("Type", "EXCH")
	b.leaf("Server", mb.guid+"@"+domain)
	b.leaf("ServerDN", "/o=EWSFAKE/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers/cn="+mb.guid+"@"+domain)
	b.leaf("ServerVersion", serverVersionHex())
	b.leaf("AD", "dc01."+ntlmDNSDomain)
	b.leaf("ASUrl", ews)
	b.leaf("EwsUrl", ews)
	b.leaf("EmwsUrl", ews)
	b.leaf("OOFUrl", ews)
	b.leaf("ServerExclusiveConnect", "off")
	b.end("Protocol")
	b.open("Protocol")
	b.leaf("Type", "EXPR")
	b.leaf("Server", host)
	b.leaf("SSL", onOff(strings.HasPrefix(s.baseURL, "https")))
	b.leaf("AuthPackage", s.authPackage())
	b.leaf("ASUrl", ews)
	b.leaf("EwsUrl", ews)
	b.leaf("EmwsUrl", ews)
	b.leaf("OOFUrl", ews)
	b.leaf("ServerExclusiveConnect", "on")
	b.leaf("CertPrincipalName", "None")
	b.leaf("GroupingInformation", lk.backend.group)
	b.end("Protocol")
	b.open("Protocol")
	b.leaf("Type", "WEB")
	b.open("Internal")
	b.leaf("OWAUrl", s.baseURL+"/owa/", "AuthenticationMethod", "Basic, Fba")
	b.open("Protocol")
	b.leaf("Type", "EXCH")
	b.leaf("ASUrl", ews)
	b.end("Protocol")
	b.end("Internal")
	b.end("Protocol")
	b.end("Account")
	b.end("Response")
}

func onOff(on bool) string {
	if on {
		return "On"
	}
	return "Off"
}

func (s *Server) authPackage() string {
	if s.opts.Auth&AuthNTLM != 0 {
		return "Ntlm"
	}
	return "Basic"
}

func hostOf(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	return u.Host
}

func legacyDN(mb *mailbox) string {
	return "/o=EWSFAKE/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=" + mb.guid + "-" + mb.display
}

// deploymentID identifies the fake "organization".
const deploymentID = "5f8ac1d5-6b0e-4d43-9a0e-3c1b2d4e5f60"

const adActionPrefix = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/"

func (s *Server) serveAutodiscoverSOAP(w http.ResponseWriter, r *http.Request, p principal) {
	s.count("autodiscover.svc")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.trace("autodiscover request", body)
	env, err := parseXML(bytes.NewReader(body))
	if err != nil || !env.is(nsSOAP, "Envelope") {
		adFault(w, "a:InternalServiceFault", "The request is not a valid SOAP 1.1 envelope.")
		return
	}
	op := env.child(nsSOAP, "Body").child(nsAD, "GetUserSettingsRequestMessage")
	if op == nil {
		action := env.child(nsSOAP, "Header").child(nsWSA, "Action").value()
		adFault(w, "a:ActionNotSupported", fmt.Sprintf("The message with Action '%s' cannot be processed at the receiver. Only GetUserSettings is implemented by this server.", action))
		return
	}
	req := op.child(nsAD, "Request")
	var users []string
	for _, u := range req.child(nsAD, "Users").children(nsAD, "User") {
		users = append(users, u.child(nsAD, "Mailbox").value())
	}
	var settings []string
	for _, st := range req.child(nsAD, "RequestedSettings").children(nsAD, "Setting") {
		settings = append(settings, st.value())
	}
	var b xw
	b.WriteString(xmlDecl)
	b.open("s:Envelope", "xmlns:s", nsSOAP, "xmlns:a", nsWSA)
	b.open("s:Header")
	b.leaf("a:Action", adActionPrefix+"GetUserSettingsResponse", "s:mustUnderstand", "1")
	b.open("h:ServerVersionInfo", "xmlns:h", nsAD, "xmlns:i", nsXSI)
	b.leaf("h:MajorVersion", strconv.Itoa(verMajor))
	b.leaf("h:MinorVersion", strconv.Itoa(verMinor))
	b.leaf("h:MajorBuildNumber", strconv.Itoa(verBuild))
	b.leaf("h:MinorBuildNumber", strconv.Itoa(verMinorBuild))
	b.leaf("h:Version", "Exchange2015")
	b.end("h:ServerVersionInfo")
	b.end("s:Header")
	b.open("s:Body")
	b.open("GetUserSettingsResponseMessage", "xmlns", nsAD)
	b.open("Response", "xmlns:i", nsXSI)
	b.leaf("ErrorCode", "NoError")
	b.empty("ErrorMessage")
	b.open("UserResponses")
	for _, u := range users {
		s.userResponse(&b, u, settings)
	}
	b.end("UserResponses")
	b.end("Response")
	b.end("GetUserSettingsResponseMessage")
	b.end("s:Body")
	b.end("s:Envelope")
	s.trace("autodiscover response", b.Bytes())
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

func (s *Server) userResponse(b *xw, email string, settings []string) {
	lk := s.adResolve(email)
	b.open("UserResponse")
	switch {
	case lk.redirect != "" && lk.redirectURL:
		b.leaf("ErrorCode", "RedirectUrl")
		b.leaf("ErrorMessage", "Redirection URL.")
		b.leaf("RedirectTarget", lk.redirect)
		b.empty("UserSettingErrors")
		b.empty("UserSettings")
	case lk.redirect != "":
		b.leaf("ErrorCode", "RedirectAddress")
		b.leaf("ErrorMessage", "Redirection address.")
		b.leaf("RedirectTarget", lk.redirect)
		b.empty("UserSettingErrors")
		b.empty("UserSettings")
	case lk.mb == nil:
		b.leaf("ErrorCode", "InvalidUser")
		b.leaf("ErrorMessage", "Invalid user: '"+email+"'")
		b.empty("RedirectTarget", "i:nil", "true")
		b.empty("UserSettingErrors")
		b.empty("UserSettings")
	default:
		b.leaf("ErrorCode", "NoError")
		b.leaf("ErrorMessage", "No error.")
		b.empty("RedirectTarget", "i:nil", "true")
		values := s.userSettings(lk)
		var bad []string
		for _, name := range settings {
			if _, ok := values[name]; !ok {
				bad = append(bad, name)
			}
		}
		if len(bad) == 0 {
			b.empty("UserSettingErrors")
		} else {
			b.open("UserSettingErrors")
			for _, name := range bad {
				b.open("UserSettingError")
				b.leaf("ErrorCode", "InvalidSetting")
				b.leaf("ErrorMessage", "The requested setting is invalid or not available.")
				b.leaf("SettingName", name)
				b.end("UserSettingError")
			}
			b.end("UserSettingErrors")
		}
		b.open("UserSettings")
		for _, name := range settings {
			if v, ok := values[name]; ok {
				b.open("UserSetting", "i:type", "StringSetting")
				b.leaf("Name", name)
				b.leaf("Value", v)
				b.end("UserSetting")
			}
		}
		b.end("UserSettings")
	}
	b.end("UserResponse")
}

func (s *Server) userSettings(lk adLookup) map[string]string {
	mb := lk.mb
	return map[string]string{
		"UserDisplayName":         mb.display,
		"UserDN":                  legacyDN(mb),
		"UserDeploymentId":        deploymentID,
		"AutoDiscoverSMTPAddress": mb.smtp,
		"InternalEwsUrl":          s.URL(),
		"ExternalEwsUrl":          s.URL(),
		"EwsSupportedSchemas":     "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2015, Exchange2016",
		"CasVersion":              fmt.Sprintf("%d.%02d.%04d.%03d", verMajor, verMinor, verBuild, verMinorBuild),
		"GroupingInformation":     lk.backend.group,
		"InternalMailboxServer":   lk.backend.fqdn,
		"ActiveDirectoryServer":   "dc01." + ntlmDNSDomain,
		"MailboxDN":               legacyDN(mb) + "/cn=mailbox",
	}
}

func adFault(w http.ResponseWriter, code, text string) {
	var b xw
	b.WriteString(xmlDecl)
	b.WriteString(`<s:Envelope xmlns:s="` + nsSOAP + `"><s:Body><s:Fault>`)
	b.leaf("faultcode", code, "xmlns:a", "http://schemas.microsoft.com/ws/2005/05/addressing/none")
	b.leaf("faultstring", text, "xml:lang", "en-US")
	b.WriteString(`</s:Fault></s:Body></s:Envelope>`)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(b.Bytes())
}
