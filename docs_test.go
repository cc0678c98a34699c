package tether_test

import (
	"os"
	"strings"
	"testing"
)

// docs/plugins.md shows the third-party plugin of example_plugin_test.go;
// this keeps the two equal.
func TestDocsShowThePlugin(t *testing.T) {
	src, err := os.ReadFile("example_plugin_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	i := strings.Index(s, "// RateLimited is the rate limiter")
	if i < 0 {
		t.Fatal("the plugin's doc comment moved")
	}
	if code := strings.TrimSpace(s[i:]); !strings.Contains(string(doc), code) {
		t.Fatal("docs/plugins.md does not show example_plugin_test.go as it is; copy it over")
	}
}
