// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"errors"
	"strings"
	"testing"
)

func TestCallbackURL(t *testing.T) {
	tests := []struct {
		endpoint, op, want string
	}{
		{"https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail", OpProcessMailboxState,
			"https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessMailboxState"},
		{"https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail,
			"https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"},
		{"http://crm:5002/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail", OpRefreshToken,
			"http://crm:5002/ServiceModel/ExchangeListenerService.svc/RefreshToken"},
		{"https://crm/ServiceModel/ExchangeListenerService.svc/", OpProcessFullEmail,
			"https://crm/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"},
		{"https://crm/ServiceModel/ExchangeListenerService.svc", OpProcessFullEmail,
			"https://crm/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"},
		{"https://crm/ServiceModel/exchangelistenerservice.SVC", OpProcessFullEmail,
			"https://crm/ServiceModel/exchangelistenerservice.SVC/ProcessFullEmail"},
		{"https://crm/ServiceModel/ExchangeListenerService.svc/NewEmail/", OpProcessFullEmail,
			"https://crm/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"},
		{" https://crm/x/ExchangeListenerService.svc/NewEmail?a=1#frag ", OpProcessFullEmail,
			"https://crm/x/ExchangeListenerService.svc/ProcessFullEmail"},
		{"HTTPS://user:pw@crm:8443/my%20site/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail,
			"https://user:pw@crm:8443/my%20site/ExchangeListenerService.svc/ProcessFullEmail"},
		{"https://[2001:db8::1]:8443/S/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail,
			"https://[2001:db8::1]:8443/S/ExchangeListenerService.svc/ProcessFullEmail"},
		{"https://crm/Other/Hook", OpProcessFullEmail, "https://crm/Other/ProcessFullEmail"},
	}
	for _, tt := range tests {
		got, err := CallbackURL(tt.endpoint, tt.op)
		if err != nil || got != tt.want {
			t.Errorf("CallbackURL(%q, %q) = %q, %v; want %q", tt.endpoint, tt.op, got, err, tt.want)
		}
	}
}

func TestCallbackURLErrors(t *testing.T) {
	tests := []struct {
		endpoint, op, contain string
	}{
		{"", OpProcessFullEmail, "is not an absolute http(s) URL"},
		{"/0/ServiceModel/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail, "is not an absolute http(s) URL"},
		{"crm.example.com/ServiceModel/ExchangeListenerService.svc", OpProcessFullEmail, "is not an absolute http(s) URL"},
		{"ftp://crm/ServiceModel/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail, "is not an absolute http(s) URL"},
		{"https:///ServiceModel/ExchangeListenerService.svc/NewEmail", OpProcessFullEmail, "has no host"},
		{"https:crm", OpProcessFullEmail, "has no host"},
		{"https://crm", OpProcessFullEmail, "has no path"},
		{"https://crm/", OpProcessFullEmail, "has no path"},
		{"https://crm/%zz", OpProcessFullEmail, "not a URL"},
		{"https://crm/x/y", "", "invalid operation"},
		{"https://crm/x/y", "a/b", "invalid operation"},
		{"https://user:secret@crm?token=secret", OpProcessFullEmail, "has no path"},
	}
	for _, tt := range tests {
		got, err := CallbackURL(tt.endpoint, tt.op)
		if err == nil || !errors.Is(err, ErrBadEndpoint) || !strings.Contains(err.Error(), tt.contain) {
			t.Errorf("CallbackURL(%q, %q) = %q, %v; want error containing %q", tt.endpoint, tt.op, got, err, tt.contain)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

func FuzzCallbackURL(f *testing.F) {
	for _, s := range []string{
		"https://crm/0/ServiceModel/ExchangeListenerService.svc/NewEmail", "https://crm/ServiceModel/ExchangeListenerService.svc/",
		"http://u:p@[::1]:80/a%2Fb/c?q#f", "https://crm", "x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, endpoint string) {
		got, err := CallbackURL(endpoint, OpProcessFullEmail)
		if err != nil {
			return
		}
		if !strings.HasSuffix(got, "/"+OpProcessFullEmail) || strings.ContainsAny(got, "?#") {
			t.Fatalf("CallbackURL(%q) = %q", endpoint, got)
		}
		again, err := CallbackURL(got, OpProcessFullEmail)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", endpoint, got, again, err)
		}
	})
}
