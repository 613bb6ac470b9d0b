package pyapi

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Exported functions that cannot fail nor panic, so need no error result.
var noErrorResult = map[string]string{
	"NewMemoryBusConfig": "returns a literal",
	"ReleaseFastID":      "bookkeeping under a mutex, no result to report on",
}

// TestSurfaceRecoversAndDoesNotLeak checks two gopy hazards on every
// exported function and method of this package:
//   - a Go panic aborts the interpreter, so each one must start with
//     `defer recoverTo(&err)`;
//   - gopy's wrapper of an error-only function returns a C string that is
//     never freed (one malloc per successful call, and the message on
//     failure), so none may return just `error`: return (bool, error).
func TestSurfaceRecoversAndDoesNotLeak(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || !fn.Name.IsExported() {
				continue
			}
			if fn.Recv != nil && !exportedReceiver(fn.Recv) {
				continue
			}
			checked++
			where := fset.Position(fn.Pos()).String() + " " + fn.Name.Name
			res := fn.Type.Results
			var last string
			n := 0
			if res != nil {
				for _, r := range res.List {
					k := len(r.Names)
					if k == 0 {
						k = 1
					}
					n += k
					last = string(src[fset.Position(r.Type.Pos()).Offset:fset.Position(r.Type.End()).Offset])
				}
			}
			if last != "error" {
				if _, ok := noErrorResult[fn.Name.Name]; !ok {
					t.Errorf("%s: has no error result, so a panic inside it cannot be recovered into one", where)
				}
				continue
			}
			if n == 1 {
				t.Errorf("%s: returns only error; gopy leaks a C string per call: return (ok bool, err error)", where)
			}
			if !startsWithRecover(fn) {
				t.Errorf("%s: must start with `defer recoverTo(&err)`", where)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d exported functions found", checked)
	}
}

func exportedReceiver(recv *ast.FieldList) bool {
	if len(recv.List) == 0 {
		return false
	}
	typ := recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

func startsWithRecover(fn *ast.FuncDecl) bool {
	if fn.Body == nil || len(fn.Body.List) == 0 {
		return false
	}
	d, ok := fn.Body.List[0].(*ast.DeferStmt)
	if !ok {
		return false
	}
	id, ok := d.Call.Fun.(*ast.Ident)
	return ok && id.Name == "recoverTo"
}
