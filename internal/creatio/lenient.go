// SPDX-License-Identifier: Apache-2.0

package creatio

// Implementation notes for the lenient-JSON converter.
//
// Creatio serializes create/recreate/update/validate/folders bodies with
// Newtonsoft's QuoteName=false (docs/CREATIO-PROTOCOL.md §5.1), so property
// names arrive unquoted:
// {Id:"…",Port:993}. encoding/json rejects that, so toStandard rewrites the input
// into standard JSON in one pass and encoding/json does the rest.
//
// Invariants:
//   - The converter is a complete JSON grammar checker (an explicit stack, no
//     recursion), so whenever it succeeds its output is valid JSON (FuzzDecode
//     checks this) and every syntax error is reported with an offset into the
//     ORIGINAL body, not into the rewritten one.
//   - Accepted beyond RFC 8259, each mirroring what Newtonsoft's reader accepts:
//     bare property names, single-quoted strings, the escape \', a leading
//     UTF-8 BOM, and one trailing comma before ']' or '}'. A bare name is a run
//     of letters, digits, '_' and '$' (JsonTextReader.ValidIdentifierChar) and
//     also '-' and '.': the writer emits dictionary keys verbatim, so a future
//     FeatureValues key such as "Email.Sync-V2" or a GUID key must not fail.
//     Everything else (comments, NaN, raw control characters in strings,
//     unquoted values) is rejected.
//   - Output is built lazily: as long as nothing needs rewriting the input slice
//     is returned as is, so standard JSON costs one scan and no copy.
//   - String contents are copied byte for byte; only the quote characters of
//     single-quoted strings and the escapes \' (not valid JSON) and, inside
//     single-quoted strings, a bare '"' are rewritten.

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// maxDepth bounds nesting. Creatio's bodies are at most three levels deep; the
// bound keeps hostile input from growing the stack without limit.
const maxDepth = 512

// Parser states: what the next non-space byte must be.
const (
	wantValue = iota // a value (or ']' right after '[' or a ',')
	wantKey          // a property name (or '}' right after '{' or a ',')
	wantColon        // ':' after a property name
	wantNext         // ',' or the closing bracket; end of input at top level
)

// converter holds the state of one toStandard call.
type converter struct {
	in    []byte
	out   []byte // nil until the first rewrite
	last  int    // in[:last] has been accounted for in out
	pos   int
	stack []byte // '{' or '[' per open container
	buf   [16]byte

	lim        Limits
	values     int // values seen (scalars and containers)
	containers int // objects and arrays opened
	topLevel   int // elements of a top-level array
}

// toStandard returns data rewritten as standard JSON, or data itself when it
// already is standard JSON. Errors are *RequestError with Offset set.
func toStandard(data []byte) ([]byte, error) {
	return toStandardLimited(data, DefaultLimits)
}

// toStandardLimited is toStandard that refuses input beyond lim before
// encoding/json allocates anything for it.
func toStandardLimited(data []byte, lim Limits) ([]byte, error) {
	c := converter{in: data, lim: lim}
	c.stack = c.buf[:0]
	if err := c.run(); err != nil {
		return nil, err
	}
	if c.out == nil {
		return c.in[c.last:], nil
	}
	return append(c.out, c.in[c.last:]...), nil
}

// emit replaces in[from:to] with repl in the output.
func (c *converter) emit(from, to int, repl string) {
	if c.out == nil {
		c.out = make([]byte, 0, len(c.in)+len(c.in)/8+16)
	}
	c.out = append(c.out, c.in[c.last:from]...)
	c.out = append(c.out, repl...)
	c.last = to
}

func (c *converter) fail(off int, format string, args ...any) error {
	return &RequestError{
		Offset: int64(off),
		Msg:    fmt.Sprintf("creatio: invalid JSON at byte %d: ", off) + fmt.Sprintf(format, args...),
	}
}

func (c *converter) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *converter) run() error {
	if len(c.in) >= 3 && c.in[0] == 0xEF && c.in[1] == 0xBB && c.in[2] == 0xBF {
		c.pos, c.last = 3, 3 // .NET writers may prefix a UTF-8 BOM
	}
	c.skipSpace()
	if c.pos == len(c.in) {
		return &RequestError{Offset: -1, Msg: ErrEmptyBody.Error(), Err: ErrEmptyBody}
	}
	state := wantValue
	canClose := false // a closing bracket may follow: right after an opener or a comma
	comma := -1       // offset of the comma just read, for dropping a trailing one
	for {
		opened := false
		c.skipSpace()
		if c.pos == len(c.in) {
			if state == wantNext && len(c.stack) == 0 {
				return nil
			}
			return c.fail(c.pos, "unexpected end of input")
		}
		b := c.in[c.pos]
		switch state {
		case wantValue:
			if b == ']' && canClose && c.top() == '[' {
				c.close(comma)
				state = wantNext
				break
			}
			next, err := c.value(b)
			if err != nil {
				return err
			}
			state = next
			opened = b == '{' || b == '['
		case wantKey:
			switch {
			case b == '}' && canClose:
				c.close(comma)
				state = wantNext
			case b == '"' || b == '\'':
				if err := c.str(b); err != nil {
					return err
				}
				state = wantColon
			default:
				if err := c.ident(); err != nil {
					return err
				}
				state = wantColon
			}
		case wantColon:
			if b != ':' {
				return c.fail(c.pos, "expected ':' after property name, found %s", describe(c.in, c.pos))
			}
			c.pos++
			state = wantValue
		case wantNext:
			top := c.top()
			switch {
			case top == 0:
				return c.fail(c.pos, "unexpected %s after top-level value", describe(c.in, c.pos))
			case b == ',':
				comma = c.pos
				c.pos++
				if top == '{' {
					state = wantKey
				} else {
					state = wantValue
				}
				canClose = true
				continue
			case (b == '}' && top == '{') || (b == ']' && top == '['):
				c.close(-1)
			default:
				return c.fail(c.pos, "expected ',' or '%c', found %s", closer(top), describe(c.in, c.pos))
			}
		}
		canClose = opened
		comma = -1
	}
}

func (c *converter) top() byte {
	if len(c.stack) == 0 {
		return 0
	}
	return c.stack[len(c.stack)-1]
}

// close consumes the closing bracket at pos; comma >= 0 is a trailing comma
// to drop from the output.
func (c *converter) close(comma int) {
	if comma >= 0 {
		c.emit(comma, comma+1, "")
	}
	c.stack = c.stack[:len(c.stack)-1]
	c.pos++
}

func closer(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// value consumes one value starting with b and returns the next state.
func (c *converter) value(b byte) (int, error) {
	if err := c.count(b == '{' || b == '['); err != nil {
		return 0, err
	}
	switch {
	case b == '{' || b == '[':
		if len(c.stack) >= maxDepth {
			return 0, c.fail(c.pos, "nesting deeper than %d levels", maxDepth)
		}
		c.stack = append(c.stack, b)
		c.pos++
		if b == '{' {
			return wantKey, nil
		}
		return wantValue, nil
	case b == '"' || b == '\'':
		return wantNext, c.str(b)
	case b == '-' || (b >= '0' && b <= '9'):
		return wantNext, c.number()
	case b == 't':
		return wantNext, c.literal("true")
	case b == 'f':
		return wantNext, c.literal("false")
	case b == 'n':
		return wantNext, c.literal("null")
	}
	return 0, c.fail(c.pos, "expected a value, found %s", describe(c.in, c.pos))
}

// count applies the limits to the value starting at pos.
func (c *converter) count(container bool) error {
	c.values++
	if c.lim.MaxValues > 0 && c.values > c.lim.MaxValues {
		return &RequestError{Offset: int64(c.pos), Err: ErrTooLarge,
			Msg: fmt.Sprintf("creatio: body has more than %d values", c.lim.MaxValues)}
	}
	if container {
		c.containers++
		if c.lim.MaxContainers > 0 && c.containers > c.lim.MaxContainers {
			return &RequestError{Offset: int64(c.pos), Err: ErrTooLarge,
				Msg: fmt.Sprintf("creatio: body has more than %d objects and arrays", c.lim.MaxContainers)}
		}
	}
	if len(c.stack) == 1 && c.stack[0] == '[' {
		c.topLevel++
		if c.lim.MaxElements > 0 && c.topLevel > c.lim.MaxElements {
			return &RequestError{Offset: int64(c.pos), Err: ErrTooLarge,
				Msg: fmt.Sprintf("creatio: body array has more than %d elements", c.lim.MaxElements)}
		}
	}
	return nil
}

func (c *converter) literal(word string) error {
	start := c.pos
	end := start + len(word)
	if end > len(c.in) || string(c.in[start:end]) != word {
		return c.fail(start, "expected a value, found %s", describe(c.in, start))
	}
	if end < len(c.in) {
		if r, _ := utf8.DecodeRune(c.in[end:]); isIdentRune(r) {
			return c.fail(start, "expected a value, found unquoted text")
		}
	}
	c.pos = end
	return nil
}

// number checks the RFC 8259 §6 number grammar.
func (c *converter) number() error {
	start := c.pos
	in := c.in
	i := start
	if in[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case digits() == 0:
		return c.fail(start, "invalid number")
	}
	if i < len(in) && in[i] == '.' {
		i++
		if digits() == 0 {
			return c.fail(start, "invalid number")
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return c.fail(start, "invalid number")
		}
	}
	if i < len(in) {
		if r, _ := utf8.DecodeRune(in[i:]); isIdentRune(r) || r == '.' {
			return c.fail(start, "invalid number")
		}
	}
	c.pos = i
	return nil
}

// str consumes a string quoted with q (double or single quote), rewriting it to a
// double-quoted JSON string when needed.
func (c *converter) str(q byte) error {
	start := c.pos
	if q == '\'' {
		c.emit(start, start+1, `"`)
	}
	in := c.in
	i := start + 1
	for i < len(in) {
		b := in[i]
		switch {
		case b == q:
			if q == '\'' {
				c.emit(i, i+1, `"`)
			}
			c.pos = i + 1
			return nil
		case b == '"': // only reachable inside a single-quoted string
			c.emit(i, i+1, `\"`)
			i++
		case b < 0x20:
			return c.fail(i, "control character 0x%02x in string (must be escaped)", b)
		case b == '\\':
			if i+1 >= len(in) {
				return c.fail(i, "unterminated string")
			}
			switch in[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case '\'':
				c.emit(i, i+2, "'")
				i += 2
			case 'u':
				if i+6 > len(in) || !isHex4(in[i+2:i+6]) {
					return c.fail(i, `invalid \u escape`)
				}
				i += 6
			default:
				return c.fail(i, "invalid escape %s", describe(in, i+1))
			}
		default:
			i++
		}
	}
	return c.fail(start, "unterminated string")
}

func isHex4(b []byte) bool {
	for _, x := range b {
		if !(x >= '0' && x <= '9' || x >= 'a' && x <= 'f' || x >= 'A' && x <= 'F') {
			return false
		}
	}
	return true
}

// ident consumes a bare property name and quotes it.
func (c *converter) ident() error {
	start := c.pos
	i := start
	for i < len(c.in) {
		if b := c.in[i]; b < utf8.RuneSelf { // fast path: Creatio's names are ASCII
			if !isIdentRune(rune(b)) {
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(c.in[i:])
		if !isIdentRune(r) {
			break
		}
		i += n
	}
	if i == start {
		return c.fail(start, "expected property name, found %s", describe(c.in, start))
	}
	c.emit(start, start, `"`)
	c.emit(i, i, `"`)
	c.pos = i
	return nil
}

// isIdentRune reports whether r may appear in a bare property name:
// Newtonsoft's ValidIdentifierChar (letter, digit, '_', '$') plus '-' and '.'.
func isIdentRune(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '_' || r == '$' || r == '-' || r == '.'
	}
	return r != utf8.RuneError && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

// describe names the byte at off for an error message.
func describe(in []byte, off int) string {
	if off >= len(in) {
		return "end of input"
	}
	b := in[off]
	if b >= 0x20 && b < 0x7f {
		return fmt.Sprintf("%q", rune(b))
	}
	return fmt.Sprintf("byte 0x%02x", b)
}
