// SPDX-License-Identifier: Apache-2.0

package autodiscover

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SOAP Autodiscover (Exchange 2010 and later, Exchange Online): POST a SOAP
// 1.1 envelope with WS-Addressing headers to .../autodiscover.svc,
// GetUserSettings for one user.
const (
	nsSOAP         = "http://schemas.xmlsoap.org/soap/envelope/"
	nsAutodiscover = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
	nsWSA          = "http://www.w3.org/2005/08/addressing"
	// actionGetUserSettings is the wsa:Action of the request.
	actionGetUserSettings = nsAutodiscover + "/Autodiscover/GetUserSettings"
	// requestedServerVersion: the first version that knows
	// GroupingInformation.
	requestedServerVersion = "Exchange2013"
)

// Setting names asked for and read.
const (
	settingDisplayName = "UserDisplayName"
	settingExternalEWS = "ExternalEwsUrl"
	settingInternalEWS = "InternalEwsUrl"
	settingGrouping    = "GroupingInformation"
)

var requestedSettings = []string{settingExternalEWS, settingInternalEWS, settingGrouping, settingDisplayName}

// soapRequest is the GetUserSettings request for addr, sent to to.
func soapRequest(addr string, to *url.URL) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<soap:Envelope xmlns:soap="` + nsSOAP + `" xmlns:a="` + nsAutodiscover + `" xmlns:wsa="` + nsWSA + `">`)
	b.WriteString(`<soap:Header>`)
	b.WriteString(`<a:RequestedServerVersion>` + requestedServerVersion + `</a:RequestedServerVersion>`)
	b.WriteString(`<wsa:Action>` + actionGetUserSettings + `</wsa:Action>`)
	b.WriteString(`<wsa:To>`)
	escape(&b, to.String())
	b.WriteString(`</wsa:To></soap:Header>`)
	b.WriteString(`<soap:Body><a:GetUserSettingsRequestMessage><a:Request>`)
	b.WriteString(`<a:Users><a:User><a:Mailbox>`)
	escape(&b, addr)
	b.WriteString(`</a:Mailbox></a:User></a:Users><a:RequestedSettings>`)
	for _, s := range requestedSettings {
		b.WriteString(`<a:Setting>` + s + `</a:Setting>`)
	}
	b.WriteString(`</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>`)
	return b.Bytes()
}

func escape(b *bytes.Buffer, s string) { _ = xml.EscapeText(b, []byte(s)) }

// soapResponse is the part of a GetUserSettings answer we read.
type soapResponse struct {
	Fault        string // faultstring (SOAP 1.1) or Reason/Text (1.2)
	ErrorCode    string // Response/ErrorCode: the whole request
	ErrorMessage string
	User         *soapUser // the first UserResponse
}

type soapUser struct {
	ErrorCode      string `xml:"ErrorCode"`
	ErrorMessage   string `xml:"ErrorMessage"`
	RedirectTarget string `xml:"RedirectTarget"`
	Settings       []struct {
		Name  string `xml:"Name"`
		Value string `xml:"Value"`
	} `xml:"UserSettings>UserSetting"`
	SettingErrors []struct {
		ErrorCode    string `xml:"ErrorCode"`
		ErrorMessage string `xml:"ErrorMessage"`
		SettingName  string `xml:"SettingName"`
	} `xml:"UserSettingErrors>UserSettingError"`
}

func (u *soapUser) setting(name string) string {
	for _, s := range u.Settings {
		if strings.TrimSpace(s.Name) == name {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}

// soapEnvelope maps an answer by local names only: real servers use the
// namespaces above, but prefixes vary and documentation samples differ.
type soapEnvelope struct {
	XMLName xml.Name
	Body    struct {
		Fault *struct {
			String string `xml:"faultstring"`
			Reason string `xml:"Reason>Text"`
		} `xml:"Fault"`
		Message *struct {
			Response struct {
				ErrorCode     string     `xml:"ErrorCode"`
				ErrorMessage  string     `xml:"ErrorMessage"`
				UserResponses []soapUser `xml:"UserResponses>UserResponse"`
			} `xml:"Response"`
		} `xml:"GetUserSettingsResponseMessage"`
	} `xml:"Body"`
}

var errNotSOAP = errors.New("not a SOAP envelope")

// parseSOAP reads a GetUserSettings answer or a SOAP fault.
func parseSOAP(data []byte) (*soapResponse, error) {
	var env soapEnvelope
	if err := xml.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if env.XMLName.Local != "Envelope" {
		return nil, errNotSOAP
	}
	r := &soapResponse{}
	if f := env.Body.Fault; f != nil {
		r.Fault = strings.TrimSpace(f.String)
		if r.Fault == "" {
			r.Fault = strings.TrimSpace(f.Reason)
		}
		if r.Fault == "" {
			r.Fault = "(no fault text)"
		}
		return r, nil
	}
	m := env.Body.Message
	if m == nil {
		return nil, errors.New("no GetUserSettingsResponseMessage in the SOAP body")
	}
	r.ErrorCode = strings.TrimSpace(m.Response.ErrorCode)
	r.ErrorMessage = strings.TrimSpace(m.Response.ErrorMessage)
	if len(m.Response.UserResponses) > 0 {
		u := m.Response.UserResponses[0]
		u.ErrorCode = strings.TrimSpace(u.ErrorCode)
		u.ErrorMessage = strings.TrimSpace(u.ErrorMessage)
		u.RedirectTarget = strings.TrimSpace(u.RedirectTarget)
		r.User = &u
	}
	return r, nil
}

// soapFault returns the fault text of a SOAP fault body, or "".
func soapFault(data []byte) string {
	r, err := parseSOAP(data)
	if err != nil {
		return ""
	}
	return mail.Excerpt(r.Fault, 300)
}

// soapAnswer interprets the answer of the SOAP endpoint u for addr.
func soapAnswer(addr string, u *url.URL, data []byte) answer {
	r, err := parseSOAP(data)
	switch {
	case err != nil:
		return failed(mail.ClassProtocol, "not a SOAP autodiscover answer: %s", mail.Excerpt(err.Error(), 200))
	case r.Fault != "":
		return failed(mail.ClassProtocol, "SOAP fault: %s", mail.Excerpt(r.Fault, 300))
	case r.ErrorCode != "" && r.ErrorCode != "NoError":
		return failed(mail.ClassProtocol, "autodiscover error %s: %s", mail.Excerpt(r.ErrorCode, 50), mail.Excerpt(r.ErrorMessage, 300))
	case r.User == nil:
		return failed(mail.ClassProtocol, "SOAP answer without a UserResponse")
	}
	usr := r.User
	switch usr.ErrorCode {
	case "NoError", "":
	case "RedirectAddress":
		if usr.RedirectTarget == "" {
			return failed(mail.ClassProtocol, "RedirectAddress without a RedirectTarget")
		}
		return answer{address: usr.RedirectTarget}
	case "RedirectUrl":
		return redirectURL(usr.RedirectTarget, "RedirectUrl")
	case "InvalidUser":
		a := failed(mail.ClassConfig, "the server does not know %s (InvalidUser: %s); check the mailbox's e-mail address",
			addr, mail.Excerpt(usr.ErrorMessage, 200))
		a.decisive = true
		return a
	default:
		return failed(mail.ClassProtocol, "autodiscover error %s: %s", mail.Excerpt(usr.ErrorCode, 50), mail.Excerpt(usr.ErrorMessage, 300))
	}
	ews, err := pickEWSURL(usr.setting(settingExternalEWS), usr.setting(settingInternalEWS))
	if err != nil {
		for _, se := range usr.SettingErrors {
			if se.SettingName == settingExternalEWS || se.SettingName == settingInternalEWS {
				err = errf("%w (%s: %s %s)", err, se.SettingName, mail.Excerpt(se.ErrorCode, 50), mail.Excerpt(se.ErrorMessage, 100))
				break
			}
		}
		return answer{err: &mail.Error{Class: mail.ClassConfig, Err: err}}
	}
	return answer{res: &Result{
		EWSURL:              ews,
		GroupingInformation: usr.setting(settingGrouping),
		DisplayName:         usr.setting(settingDisplayName),
		Address:             addr,
		Via:                 show(u),
		Protocol:            string(kindSOAP),
	}}
}

// redirectURL turns a RedirectUrl/redirectUrl value into a redirect answer;
// the target is checked by the caller like any redirect.
func redirectURL(target, element string) answer {
	t, err := url.Parse(target)
	if target == "" || err != nil || !t.IsAbs() || t.Host == "" {
		return failed(mail.ClassProtocol, "%s with an unusable target %q", element, mail.Excerpt(target, 200))
	}
	return answer{location: t}
}

// pickEWSURL returns the first usable of the EWS URLs (external first: the
// service usually runs outside the customer's network). Credentials will be
// sent there, so it must be https.
func pickEWSURL(urls ...string) (string, error) {
	var bad string
	for _, s := range urls {
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err == nil && u.Scheme == "https" && u.Host != "" && u.User == nil {
			return s, nil
		}
		if bad == "" {
			bad = mail.Excerpt(s, 200)
			if err == nil {
				bad = show(u) // never echo user information
			}
		}
	}
	if bad != "" {
		return "", errf("the answer's EWS URL %q is not an https URL (credentials are only sent over TLS)", bad)
	}
	return "", errors.New("the answer has no EWS URL")
}
