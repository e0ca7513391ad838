// SPDX-License-Identifier: Apache-2.0

// Package secret seals credentials at rest with AES-256-GCM, so that mailbox
// passwords and OAuth tokens kept in a shared store (Redis) are useless to
// whoever can read the store but not the key.
//
// A sealed value is
//
//	version (1 byte) | nonce (12 bytes, random) | ciphertext | GCM tag (16 bytes)
//
// 29 bytes more than the plaintext. The version byte names the algorithm and key
// generation; it is authenticated together with the caller's associated data, so
// a later key rotation can add versions (a box that opens the old ones and seals
// with the new) without touching stored data first. Random 96-bit nonces keep a
// key safe for far more than the 2^32 seals NIST SP 800-38D allows per key.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the key length: AES-256.
const KeySize = 32

// version1 is AES-256-GCM with a 12-byte random nonce under the box's key.
const version1 byte = 1

const (
	nonceSize = 12
	overhead  = 1 + nonceSize + 16
)

var (
	// ErrKeySize is returned by New for a key that is not KeySize bytes long.
	ErrKeySize = errors.New("secret: key must be 32 bytes")
	// ErrOpen means a sealed value failed authentication: it was altered,
	// truncated, sealed with another key or bound to other associated data.
	// The causes are indistinguishable by design.
	ErrOpen = errors.New("secret: message authentication failed (wrong key or altered data)")
	// ErrVersion means a sealed value carries a version this box cannot open.
	ErrVersion = errors.New("secret: unknown sealed-value version")
)

// Box seals and opens values with one key. It is safe for concurrent use. Its
// String form never shows the key.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key. The key is not retained beyond the
// expanded AES key schedule.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, ErrKeySize
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext under a fresh random nonce.
func (b *Box) Seal(plaintext []byte) []byte { return b.SealAD(plaintext, nil) }

// Open authenticates and decrypts a value from Seal.
func (b *Box) Open(sealed []byte) ([]byte, error) { return b.OpenAD(sealed, nil) }

// SealAD is Seal with associated data: ad is authenticated but not stored, and
// OpenAD must be given the same ad. Binding a record to its key (the mailbox id)
// stops anyone with write access to the store from moving a sealed record to
// another mailbox.
func (b *Box) SealAD(plaintext, ad []byte) []byte {
	out := make([]byte, 1+nonceSize, len(plaintext)+overhead)
	out[0] = version1
	_, _ = rand.Read(out[1 : 1+nonceSize]) // crypto/rand.Read never fails (it crashes the program instead)
	return b.aead.Seal(out, out[1:1+nonceSize], plaintext, additional(out[0], ad))
}

// OpenAD authenticates and decrypts a value from SealAD with the same ad.
func (b *Box) OpenAD(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, ErrOpen
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w %d", ErrVersion, sealed[0])
	}
	pt, err := b.aead.Open(nil, sealed[1:1+nonceSize], sealed[1+nonceSize:], additional(sealed[0], ad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// additional authenticates the version byte along with the caller's data.
func additional(version byte, ad []byte) []byte {
	out := make([]byte, 0, 1+len(ad))
	return append(append(out, version), ad...)
}

// Overhead is how many bytes Seal adds to a plaintext.
func (b *Box) Overhead() int { return overhead }

// String describes the box without its key.
func (b *Box) String() string { return "secret.Box(AES-256-GCM)" }

// GoString is String, for %#v.
func (b *Box) GoString() string { return b.String() }

// LoadKey returns the key configured by EL_SECRET_KEY (b64: standard or URL-safe
// base64 of 32 bytes, padding optional) or EL_SECRET_KEY_FILE (file: a file
// holding either such base64 text, surrounding white space ignored, or exactly
// 32 raw bytes). Both empty returns nil, nil: no key configured. Setting both is
// an error. Errors name the variable (and the file), never the key material.
func LoadKey(b64, file string) ([]byte, error) {
	switch {
	case b64 != "" && file != "":
		return nil, errors.New("secret: set EL_SECRET_KEY or EL_SECRET_KEY_FILE, not both")
	case b64 != "":
		key, ok := decodeKey(b64)
		if !ok {
			return nil, errors.New("secret: EL_SECRET_KEY is not the base64 encoding of 32 bytes (make one with: openssl rand -base64 32)")
		}
		return key, nil
	case file != "":
		raw, err := os.ReadFile(file)
		if err != nil {
			// The *PathError names the file and the cause, not the content.
			return nil, fmt.Errorf("secret: EL_SECRET_KEY_FILE: %w", err)
		}
		if len(raw) == KeySize {
			return raw, nil // raw key; 32 bytes cannot be base64 of 32 bytes (that is 43 or 44 characters)
		}
		key, ok := decodeKey(string(raw))
		if !ok {
			return nil, fmt.Errorf("secret: EL_SECRET_KEY_FILE %s: want 32 raw bytes or the base64 encoding of 32 bytes", file)
		}
		return key, nil
	}
	return nil, nil
}

// decodeKey accepts standard and URL-safe base64, with or without padding.
func decodeKey(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil && len(key) == KeySize {
			return key, true
		}
	}
	return nil, false
}
