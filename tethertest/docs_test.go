package tethertest_test

import (
	"os"
	"strings"
	"testing"
)

// docs/testing.md shows the package Example; this keeps the two equal.
func TestDocsShowTheExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/testing.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	i := strings.Index(s, "// A client with the recipe")
	if i < 0 {
		t.Fatal("the Example's doc comment moved")
	}
	if example := strings.TrimSpace(s[i:]); !strings.Contains(string(doc), example) {
		t.Fatal("docs/testing.md does not show tethertest/example_test.go's Example as it is; copy it over")
	}
}
