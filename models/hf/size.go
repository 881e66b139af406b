package hf

import (
	"fmt"
	"slices"
	"strings"

	"github.com/golora/golora/internal/safetensors"
)

// sizeSlack is how many elements (64 MiB of float32) a config may claim
// beyond twice the checkpoint's before CheckSize refuses it unbuilt.
const sizeSlack = 16 << 20

// Expect is a tensor whose shape a config.json gives, by the model's name
// for it.
type Expect struct {
	Name  string
	Shape []int64
}

// CheckSize compares what a config.json implies with the checkpoint in
// dir, reading only the checkpoint's headers, before the model is built:
// a config that claims a far larger model than the checkpoint holds
// (vocab_size 10⁹ beside a few megabytes of weights) must fail before its
// parameters are allocated.
//
// It only refuses what would allocate far more than the checkpoint holds
// (more than twice its elements plus sizeSlack): a smaller disagreement,
// a weight missing or misshaped by a little, is left to the load, whose
// error lists every key.
//
// expect are tensors whose shapes the config gives, resolved against the
// checkpoint's keys as LoadWeightsWith resolves them (with and without
// spec.BasePrefix); one the checkpoint has with a far larger shape is an
// error naming the key and both shapes (one it lacks is left to the load,
// which reports it). numel is a lower bound of the elements of the model's
// persistent tensors (a tied weight counted once). It is a float64 so
// that a config's sizes cannot overflow it.
func CheckSize(dir string, spec LoadSpec, numel float64, expect ...Expect) error {
	prod := func(s []int64) float64 {
		n := 1.0
		for _, d := range s {
			n *= float64(d)
		}
		return n
	}
	far := func(want, have float64) bool { return want > 2*have+sizeSlack }
	path, err := CheckpointFile(dir)
	if err != nil {
		return err
	}
	r, err := safetensors.OpenAny(path)
	if err != nil {
		return errorf("load %s: %w", path, err)
	}
	defer r.Close()
	var bad []string
	for _, e := range expect {
		keys := []string{e.Name}
		if p := spec.BasePrefix; p != "" {
			keys = append(keys, p+"."+e.Name)
			if rest, ok := strings.CutPrefix(e.Name, p+"."); ok {
				keys = append(keys, rest)
			}
		}
		for _, key := range keys {
			if info, ok := r.Info(key); ok {
				if !slices.Equal(info.Shape, e.Shape) && far(prod(e.Shape), prod(info.Shape)) {
					bad = append(bad, fmt.Sprintf("%s: config.json gives %v, checkpoint %v", key, e.Shape, info.Shape))
				}
				break
			}
		}
	}
	if len(bad) > 0 {
		return errorf("load %s: config.json does not fit the checkpoint: %s", path, strings.Join(bad, "; "))
	}
	var total float64
	for _, k := range r.Names() {
		info, _ := r.Info(k)
		total += prod(info.Shape)
	}
	if far(numel, total) {
		return errorf("load %s: config.json gives a model of at least %.0f parameters, the checkpoint holds %.0f values", path, numel, total)
	}
	return nil
}
