// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"time"

	"github.com/emaillistener/emaillistener/internal/jwtclaims"
)

// tokenExpiry reads the exp claim of a JWT access token (Microsoft identity
// platform tokens are JWTs) without verifying it: it only schedules a refresh,
// the mail server decides validity. Opaque tokens report ok=false.
func tokenExpiry(token string) (time.Time, bool) {
	c, ok := jwtclaims.Parse(token)
	return c.Expires, ok && !c.Expires.IsZero()
}
