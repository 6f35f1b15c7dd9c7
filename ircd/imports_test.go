package ircd

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ircd knows no Matrix: it imports neither the session, the store, the
// Matrix mapping nor mautrix, so the IRC side can run apart from the
// session (docs/architecture.md). Its text rules come from irctext.
func TestIRCSideImportsNoMatrix(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	forbidden := []string{
		"github.com/mxircd/mxircd/session", "github.com/mxircd/mxircd/store",
		"github.com/mxircd/mxircd/mapping", "maunium.net/go/mautrix",
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			for _, bad := range forbidden {
				if path == bad || strings.HasPrefix(path, bad+"/") {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
