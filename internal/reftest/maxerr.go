package reftest

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
)

// MaxErrors records the largest relative error seen per key (a dtype, a
// device, a kind of result: whatever the caller groups by) and where it came
// from, for the test log. The zero value is ready to use; it is safe for
// concurrent use.
type MaxErrors struct {
	mu sync.Mutex
	m  map[string]maxError
}

type maxError struct {
	err    float64
	source string
}

// Note records e under key when it is the first or the largest error seen
// for key; source names the case that produced it (it may be empty).
func (m *MaxErrors) Note(key, source string, e float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]maxError{}
	}
	if cur, ok := m.m[key]; !ok || e > cur.err {
		m.m[key] = maxError{e, source}
	}
}

// Max returns the largest error noted under key and its source; ok is false
// when nothing was noted under key.
func (m *MaxErrors) Max(key string) (e float64, source string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.m[key]
	return cur.err, cur.source, ok
}

// Lines returns one line per key that starts with prefix (every key when
// prefix is empty), in sorted order: "max relative error KEY E (SOURCE)".
func (m *MaxErrors) Lines(prefix string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.m))
	for k := range m.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		e := m.m[k]
		lines[i] = fmt.Sprintf("max relative error %-22s %.3g", k, e.err)
		if e.source != "" {
			lines[i] += " (" + e.source + ")"
		}
	}
	return lines
}

// Log writes Lines(prefix) to t's log.
func (m *MaxErrors) Log(t testing.TB, prefix string) {
	t.Helper()
	for _, l := range m.Lines(prefix) {
		t.Log(l)
	}
}
