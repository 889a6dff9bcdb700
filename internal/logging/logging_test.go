package logging

import "testing"

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, format string
		ok                  bool
	}{
		{"text at info is accepted", "info", "text", true},
		{"json at debug is accepted", "debug", "json", true},
		{"levels are case-insensitive", "WARN", "text", true},
		{"an unknown level is refused", "loud", "text", false},
		{"an unknown format is refused", "info", "xml", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.level, tt.format)
			if (err == nil) != tt.ok {
				t.Errorf("New(%q, %q) = %v, want ok=%v", tt.level, tt.format, err, tt.ok)
			}
		})
	}
}
