package safetensors

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// pickleSuffixes end the names of PyTorch pickle files (torch.save):
// pytorch_model.bin, adapter_model.bin, training_args.bin, *.pt, *.pth, ...
var pickleSuffixes = []string{".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin.index.json"}

// PickleFiles returns the names of the files in dir that are PyTorch
// pickles by their name (pytorch_model.bin, its .bin.index.json,
// adapter_model.bin, *.pt, *.pth, *.ckpt, *.pkl), sorted; nil if none or
// if dir cannot be read. golora never loads them: unpickling runs
// arbitrary code. Loaders use it to say why a directory without
// safetensors does not load; see PickleError.
func PickleFiles(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		for _, s := range pickleSuffixes {
			if strings.HasSuffix(e.Name(), s) {
				out = append(out, e.Name())
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// PickleError returns the error for a directory that holds the PyTorch
// pickles files (from PickleFiles) but not want, the safetensors file
// looked for: pickles are not loaded; convert them to safetensors.
func PickleError(dir, want string, files []string) error {
	return fmt.Errorf("%s has no %s, only PyTorch pickle files (%s): golora never loads pickles, which can run arbitrary code; convert them to safetensors (in Python: save_pretrained(dir, safe_serialization=True), or safetensors.torch.save_file)",
		dir, want, strings.Join(files, ", "))
}
