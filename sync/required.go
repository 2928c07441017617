package sync

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	stdsync "sync"
)

// requiredCache maps a payload type to the JSON names of its required fields: those
// without omitempty or omitzero, which a sender always writes (the schemas in
// docs/schema/v1 list the same, see TestSchemasMatchGoTypes).
var requiredCache stdsync.Map // reflect.Type → []string

func requiredFields(t reflect.Type) []string {
	if v, ok := requiredCache.Load(t); ok {
		return v.([]string)
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		name, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero") {
			continue
		}
		names = append(names, name)
	}
	requiredCache.Store(t, names)
	return names
}

// checkRequired reports the first required field of v's type that payload lacks: the
// strict decoder leaves a missing field at its zero value, which would pass for "0"
// or "" where the contract requires the field to be present.
func checkRequired(payload []byte, v any) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, name := range requiredFields(reflect.TypeOf(v).Elem()) {
		if _, ok := fields[name]; !ok {
			return fmt.Errorf("%w: required field %s missing", ErrMalformed, name)
		}
	}
	return nil
}
