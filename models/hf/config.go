package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/torch"
)

// ConfigFile is the name of a checkpoint's configuration file.
const ConfigFile = "config.json"

// Config is a parsed config.json: the checkpoint directory, its model_type
// and every top-level field, undecoded. The typed getters treat a field
// that is absent or JSON null as absent (they return the default) and
// report a field of the wrong type as an error that names the field and
// the file.
type Config struct {
	Dir       string                     // the checkpoint directory
	ModelType string                     // "llama", "qwen2", "gpt2", "bert", ...
	Raw       map[string]json.RawMessage // every top-level field of config.json
}

// ReadConfig reads dir/config.json. It is an error when dir is not a
// directory, has no config.json, holds malformed JSON (not an object), or
// when the config has no model_type string. A config.json larger than
// jsonfile.MaxConfigSize (16 MiB) is refused without being read, with an
// error naming the file and the limit.
func ReadConfig(dir string) (*Config, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("hf: checkpoint %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("hf: checkpoint %s: not a directory", dir)
	}
	path := filepath.Join(dir, ConfigFile)
	data, err := jsonfile.Read(path, jsonfile.MaxConfigSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hf: %s is not a Hugging Face checkpoint: it has no %s", dir, ConfigFile)
	}
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	return ParseConfig(dir, data)
}

// ParseConfig parses the bytes of a config.json; dir is recorded as the
// config's directory (it may be empty) and used in error messages.
func ParseConfig(dir string, data []byte) (*Config, error) {
	c := &Config{Dir: dir}
	if err := json.Unmarshal(data, &c.Raw); err != nil {
		return nil, fmt.Errorf("hf: %s: malformed JSON: %w", c.path(), err)
	}
	if c.Raw == nil {
		return nil, fmt.Errorf("hf: %s: not a JSON object", c.path())
	}
	mt, err := c.String("model_type", "")
	if err != nil {
		return nil, err
	}
	if mt == "" {
		return nil, fmt.Errorf("hf: %s: no model_type", c.path())
	}
	c.ModelType = mt
	return c, nil
}

func (c *Config) path() string {
	if c == nil || c.Dir == "" {
		return ConfigFile
	}
	return filepath.Join(c.Dir, ConfigFile)
}

// raw returns the field's bytes, or nil when it is absent or null.
func (c *Config) raw(key string) json.RawMessage {
	if c == nil {
		return nil
	}
	r, ok := c.Raw[key]
	if !ok || bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
		return nil
	}
	return r
}

func (c *Config) typeErr(key, want string, r json.RawMessage) error {
	s := string(r)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Errorf("hf: %s: field %q: want %s, got %s", c.path(), key, want, s)
}

// Has reports whether key is present and not null.
func (c *Config) Has(key string) bool { return c.raw(key) != nil }

// Int returns the integer field key, or def when it is absent or null.
// A number with a fractional part, or a non-number, is an error.
func (c *Config) Int(key string, def int64) (int64, error) {
	r := c.raw(key)
	if r == nil {
		return def, nil
	}
	var n json.Number
	if err := json.Unmarshal(r, &n); err != nil {
		return 0, c.typeErr(key, "an integer", r)
	}
	if v, err := n.Int64(); err == nil {
		return v, nil
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, c.typeErr(key, "an integer", r)
	}
	return int64(f), nil
}

// Float returns the number field key, or def when it is absent or null.
func (c *Config) Float(key string, def float64) (float64, error) {
	r := c.raw(key)
	if r == nil {
		return def, nil
	}
	var f float64
	if err := json.Unmarshal(r, &f); err != nil {
		return 0, c.typeErr(key, "a number", r)
	}
	return f, nil
}

// String returns the string field key, or def when it is absent or null.
func (c *Config) String(key string, def string) (string, error) {
	r := c.raw(key)
	if r == nil {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", c.typeErr(key, "a string", r)
	}
	return s, nil
}

// Bool returns the boolean field key, or def when it is absent or null.
func (c *Config) Bool(key string, def bool) (bool, error) {
	r := c.raw(key)
	if r == nil {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(r, &b); err != nil {
		return false, c.typeErr(key, "true or false", r)
	}
	return b, nil
}

// Decode unmarshals the field key (a sub-object such as rope_scaling,
// rope_parameters or id2label) into v. An absent or null field leaves v
// unchanged and is not an error; use Has to tell.
func (c *Config) Decode(key string, v any) error {
	r := c.raw(key)
	if r == nil {
		return nil
	}
	if err := json.Unmarshal(r, v); err != nil {
		return fmt.Errorf("hf: %s: field %q: %w", c.path(), key, err)
	}
	return nil
}

// DType returns the checkpoint's declared dtype: the "dtype" field that
// transformers ≥ 5 writes, else "torch_dtype" as older versions wrote it.
// ok is false when neither is set.
func (c *Config) DType() (d torch.DType, ok bool, err error) {
	for _, key := range []string{"dtype", "torch_dtype"} {
		s, err := c.String(key, "")
		if err != nil {
			return torch.Invalid, false, err
		}
		if s == "" {
			continue
		}
		d, err := ParseDType(s)
		if err != nil {
			return torch.Invalid, false, fmt.Errorf("hf: %s: field %q: %w", c.path(), key, err)
		}
		return d, true, nil
	}
	return torch.Invalid, false, nil
}

// ParseDType parses a floating-point dtype name as transformers and the
// command line write it: "float32" ("float", "fp32"), "bfloat16" ("bf16")
// and "float16" ("half", "fp16"), with or without a "torch." prefix, in any
// case.
func ParseDType(name string) (torch.DType, error) {
	s := strings.ToLower(strings.TrimSpace(name))
	s = strings.TrimPrefix(s, "torch.")
	switch s {
	case "float32", "float", "fp32", "f32":
		return torch.Float32, nil
	case "bfloat16", "bf16":
		return torch.BFloat16, nil
	case "float16", "half", "fp16", "f16":
		return torch.Float16, nil
	}
	return torch.Invalid, fmt.Errorf("hf: unsupported dtype %q (supported: float32, bfloat16, float16)", name)
}
