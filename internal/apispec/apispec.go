// Package apispec reads docs/api.yaml, the OpenAPI 3.1 document of posd's local API,
// and checks real answers against it, so tests keep the document and the code in
// step. The schemas are JSON Schema 2020-12 (OpenAPI 3.1's dialect) and are compiled
// with github.com/santhosh-tekuri/jsonschema/v6.
package apispec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

const docURL = "file:///api.yaml"

// Spec is a loaded OpenAPI document.
type Spec struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	cache    map[string]*jsonschema.Schema
}

// Load reads the OpenAPI document at path.
func Load(path string) (*Spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	var y any
	if err := yaml.Unmarshal(raw, &y); err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", path, err)
	}
	// Through JSON, so numbers and maps have the types the schema compiler expects.
	j, err := json.Marshal(y)
	if err != nil {
		return nil, fmt.Errorf("apispec: %s: %w", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	m, ok := doc.(map[string]any)
	if !ok || m["openapi"] != "3.1.0" {
		return nil, errors.New("apispec: not an OpenAPI 3.1.0 document")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, fmt.Errorf("apispec: %w", err)
	}
	return &Spec{doc: m, compiler: c, cache: map[string]*jsonschema.Schema{}}, nil
}

func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// Operations lists every "METHOD /path" the document describes, sorted.
func (s *Spec) Operations() []string {
	var out []string
	paths, _ := s.doc["paths"].(map[string]any)
	for p, item := range paths {
		ops, _ := item.(map[string]any)
		for m := range ops {
			switch m {
			case "get", "post", "put", "patch", "delete":
				out = append(out, strings.ToUpper(m)+" "+p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// resolve follows a {"$ref": "#/..."} to its target, returning the target and its
// JSON pointer.
func (s *Spec) resolve(v any, ptr string) (any, string) {
	for range 10 {
		m, ok := v.(map[string]any)
		if !ok {
			return v, ptr
		}
		ref, ok := m["$ref"].(string)
		if !ok || !strings.HasPrefix(ref, "#/") {
			return v, ptr
		}
		ptr = ref[1:]
		v = s.doc
		for _, part := range strings.Split(ref[2:], "/") {
			part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
			mm, _ := v.(map[string]any)
			v = mm[part]
		}
	}
	return v, ptr
}

func get(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

// Check validates one real answer: the operation (method and path template as in
// the document), the status code, the media type (without parameters) and the body.
// An undocumented operation, status or media type is an error too.
func (s *Spec) Check(method, path string, code int, mediaType string, body []byte) error {
	base := "/paths/" + escape(path) + "/" + strings.ToLower(method)
	op := get(get(s.doc["paths"], path), strings.ToLower(method))
	if op == nil {
		return fmt.Errorf("apispec: %s %s is not in docs/api.yaml", method, path)
	}
	resp := get(get(op, "responses"), strconv.Itoa(code))
	if resp == nil {
		return fmt.Errorf("apispec: %s %s answered %d, which docs/api.yaml does not list", method, path, code)
	}
	resp, ptr := s.resolve(resp, base+"/responses/"+strconv.Itoa(code))
	content := get(resp, "content")
	if content == nil {
		if len(bytes.TrimSpace(body)) == 0 {
			return nil
		}
		return fmt.Errorf("apispec: %s %s %d has a body but docs/api.yaml lists none", method, path, code)
	}
	media := get(content, mediaType)
	if media == nil {
		return fmt.Errorf("apispec: %s %s %d answered %s, which docs/api.yaml does not list", method, path, code, mediaType)
	}
	if mediaType != "application/json" {
		return nil // text, PNG, event streams: the media type is the contract
	}
	loc := docURL + "#" + ptr + "/content/" + escape(mediaType) + "/schema"
	sch, ok := s.cache[loc]
	if !ok {
		var err error
		if sch, err = s.compiler.Compile(loc); err != nil {
			return fmt.Errorf("apispec: compile %s: %w", loc, err)
		}
		s.cache[loc] = sch
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("apispec: %s %s %d: the body is not JSON: %w", method, path, code, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("apispec: %s %s %d does not match docs/api.yaml: %w\nbody: %s", method, path, code, err, body)
	}
	return nil
}
