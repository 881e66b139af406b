package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/generate"
	"github.com/golora/golora/tokenizer"
)

// generation turns the generation flags into generate's options and checks
// them. Sampling is on when --temperature, --top-k, --top-p or --seed is
// given.
func (o *options) generation() error {
	if o.maxNew < 0 {
		return fmt.Errorf("--max-new-tokens %d: want ≥ 0", o.maxNew)
	}
	opts := []generate.Option{generate.MaxNewTokens(o.maxNew)}
	if o.set["temperature"] || o.set["top-k"] || o.set["top-p"] || o.set["seed"] {
		opts = append(opts, generate.Sample(o.seed))
		if o.set["temperature"] {
			if !(o.temperature > 0) {
				return fmt.Errorf("--temperature %v: want > 0 (leave out the sampling flags for greedy decoding)", o.temperature)
			}
			opts = append(opts, generate.Temperature(o.temperature))
		}
		if o.set["top-k"] {
			if o.topK < 1 {
				return fmt.Errorf("--top-k %d: want ≥ 1", o.topK)
			}
			opts = append(opts, generate.TopK(o.topK))
		}
		if o.set["top-p"] {
			if !(o.topP > 0 && o.topP <= 1) {
				return fmt.Errorf("--top-p %v: want 0 < p ≤ 1", o.topP)
			}
			opts = append(opts, generate.TopP(o.topP))
		}
	}
	if o.set["repetition-penalty"] {
		if !(o.penalty > 0) {
			return fmt.Errorf("--repetition-penalty %v: want > 0", o.penalty)
		}
		opts = append(opts, generate.RepetitionPenalty(o.penalty))
	}
	if o.set["stop"] && o.stop == "" {
		return errors.New("--stop: empty stop string")
	}
	if err := generate.Validate(opts...); err != nil {
		return err
	}
	o.generateOptions = opts
	return nil
}

// generateMode continues --prompt and streams the text to stdout.
func generateMode(o *options, m models.Model) error {
	if m.Kind() != models.CausalLM {
		return fmt.Errorf("--prompt: %s is an encoder (model_type %s): it cannot generate", o.base, m.Type())
	}
	tok, err := tokenizer.Load(o.base)
	if err != nil {
		return err
	}
	ids, err := tok.Encode(o.prompt, true)
	if err != nil {
		return fmt.Errorf("--prompt: %w", err)
	}
	if len(ids) == 0 {
		return errors.New("--prompt: the text encodes to no tokens")
	}
	for _, id := range ids {
		if id >= m.VocabSize() {
			return fmt.Errorf("--prompt: token id %d is outside the model's vocabulary [0, %d): tokenizer.json does not match %s", id, m.VocabSize(), o.base)
		}
	}
	eos, pad, err := specialIDs(o.base, tok)
	if err != nil {
		return err
	}
	stream := tok.NewDecodeStream(true)
	var printed strings.Builder
	var streamErr error
	opts := append(o.generateOptions, generate.PadID(pad), generate.EOS(eos...),
		generate.OnToken(func(_ int, id int64) error {
			if streamErr != nil {
				return nil
			}
			piece, err := stream.Step(id)
			if err != nil {
				streamErr = err // the rest is printed when generation ends
				return nil
			}
			printed.WriteString(piece)
			_, err = io.WriteString(o.stdout, piece)
			return err
		}))
	if o.set["stop"] {
		decode := func(ids []int64) (string, error) { return tok.Decode(ids, true) }
		opts = append(opts, generate.StopStrings(decode, o.stop))
	}
	out, genErr := generate.Generate(o.ctx, m, [][]int64{ids}, opts...)
	if out != nil {
		// What the stream held back (an incomplete character at the end)
		// or could not stream: the output is decode(new ids) in full.
		full, err := tok.Decode(out.Tokens[0][:out.Lengths[0]], true)
		if err == nil && strings.HasPrefix(full, printed.String()) {
			if _, err := io.WriteString(o.stdout, full[printed.Len():]); err != nil && genErr == nil {
				genErr = err
			}
		}
		if genErr == nil || out.Lengths[0] > 0 {
			fmt.Fprintln(o.stdout)
		}
	}
	return genErr
}

// specialIDs returns the EOS ids and the pad id for generation:
// generation_config.json's, else config.json's, else the tokenizer's EOS;
// the pad id falls back to the first EOS (as transformers does), else 0.
func specialIDs(dir string, tok *tokenizer.Tokenizer) (eos []int64, pad int64, err error) {
	padSet := false
	for _, name := range []string{"generation_config.json", "config.json"} {
		data, err := jsonfile.Read(filepath.Join(dir, name), jsonfile.MaxConfigSize)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		var c struct {
			EOS json.RawMessage `json:"eos_token_id"`
			Pad *int64          `json:"pad_token_id"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			return nil, 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
		}
		if eos == nil && len(c.EOS) > 0 && string(c.EOS) != "null" {
			var one int64
			if json.Unmarshal(c.EOS, &one) == nil {
				eos = []int64{one}
			} else if err := json.Unmarshal(c.EOS, &eos); err != nil {
				return nil, 0, fmt.Errorf("%s: eos_token_id: want an id or a list of ids, got %s", filepath.Join(dir, name), c.EOS)
			}
		}
		if !padSet && c.Pad != nil {
			pad, padSet = *c.Pad, true
		}
	}
	if eos == nil {
		if id, ok := tok.EOS(); ok {
			eos = []int64{id}
		}
	}
	if !padSet && len(eos) > 0 {
		pad = eos[0]
	}
	return eos, pad, nil
}
