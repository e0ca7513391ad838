// SPDX-License-Identifier: Apache-2.0

// Package autodiscover finds a mailbox's Exchange Web Services URL (and its
// GroupingInformation, for streaming affinity) from the e-mail address, the
// way Outlook and the EWS Managed API do. Discover runs these steps in order
// and returns on the first EWS URL:
//
//  1. Candidates from the address's domain (or Options.Endpoints instead):
//     https://<domain>/autodiscover/autodiscover.svc (SOAP GetUserSettings),
//     then .../autodiscover.xml (POX), then the same two on
//     https://autodiscover.<domain>. A host that cannot be reached (no such
//     host, refused, TLS, no answer in time) is not asked a second time.
//  2. The unauthenticated probe GET http://autodiscover.<domain>/autodiscover/autodiscover.xml
//     (through Options.ProbeHTTP, never with credentials), whose 3xx Location
//     is tried like a candidate (SOAP at the sibling .svc, then POX).
//  3. The DNS SRV record _autodiscover._tcp.<domain>: each target host, in
//     the resolver's priority/weight order, is tried like a candidate.
//
// Each answer is handled like this:
//
//   - a redirect (HTTP 3xx Location, SOAP RedirectUrl, POX redirectUrl) is
//     followed to the new URL, once checked (see below);
//   - an address redirect (SOAP RedirectAddress, POX redirectAddr) restarts
//     at step 1 with the new address, which is what Result.Address reports;
//   - HTTP 401 is remembered (the credentials were rejected there) and the
//     next candidate is tried;
//   - every other failure (404, not an autodiscover answer, an answer
//     without an EWS URL, an error code) is recorded and the next candidate
//     is tried.
//
// When no candidate gives an EWS URL, the error lists every candidate tried
// and why it failed (*Error, inside a *mail.Error). Its class is, in order:
// the server's own "unknown mailbox" answer (config), any 401 (auth), else
// the most telling failure of the candidates that were not guesses (a bad
// certificate, a refused redirect, garbage, a network failure), else config:
// autodiscover is not set up for the domain.
//
// Redirect safety. Credentials are only ever sent over https: every redirect
// target (HTTP Location, RedirectUrl/redirectUrl, probe Location, SRV target)
// must be an https URL without user information, must be allowed by the
// redirect policy, and counts against Options.MaxRedirects; a target already
// tried for the same address is a loop and is not asked again. The policy is
// Options.AllowRedirect when set, matched as .NET's Regex.IsMatch matches
// (Creatio's ExchangeAutodiscoverRedirectUrlRegex): a search anywhere in the
// absolute URL, not an anchored whole-string match; patterns that must pin the
// whole URL write ^…$ themselves. Without a pattern, only hosts inside the
// domains of the addresses being discovered, and Exchange Online's
// autodiscover hosts, are allowed.
//
// Every response body is read through a limit (Options.MaxResponseBytes);
// parsers are prefix- and namespace-lenient (Microsoft's published samples
// carry wrong namespaces) but element-name exact. Discover keeps no state
// between calls and is safe for concurrent use; callers cache results.
package autodiscover
