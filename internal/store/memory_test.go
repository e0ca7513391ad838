// SPDX-License-Identifier: Apache-2.0

package store_test

import (
	"testing"

	"github.com/emaillistener/emaillistener/internal/store"
	"github.com/emaillistener/emaillistener/internal/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) storetest.Store { return store.NewMemory() }, store.ErrNotFound)
}
