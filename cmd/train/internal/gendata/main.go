// Command gendata writes the data sets that cmd/train ships in
// cmd/train/data: sentences of a small generated language (the base
// model's corpus) and the same language with every word spelled backwards
// (the new task the default run teaches a LoRA adapter).
//
//	go run ./cmd/train/internal/gendata -out cmd/train/data
//
// The output is a pure function of -seed: the files in the repository were
// written with the defaults.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/golora/golora/internal/atomicfile"
)

var (
	nouns  = []string{"cat", "dog", "bird", "fox", "mouse", "horse", "girl", "boy", "king", "queen", "farmer", "baker"}
	adjs   = []string{"big", "small", "red", "old", "young", "happy", "lazy", "quick", "brown", "tiny"}
	verbs  = []string{"sees", "likes", "chases", "finds", "helps", "follows", "watches", "loves", "calls", "hears"}
	places = []string{"in the garden", "near the river", "on the hill", "at home", "in the forest", "by the sea"}
)

// Sentence draws one sentence: a noun phrase, a verb, a noun phrase and,
// one time in three, a place, then a full stop.
func Sentence(r *rand.Rand) string {
	np := func() string {
		det := "the"
		if r.IntN(3) == 0 {
			det = "a"
		}
		if r.IntN(2) == 0 {
			return det + " " + adjs[r.IntN(len(adjs))] + " " + nouns[r.IntN(len(nouns))]
		}
		return det + " " + nouns[r.IntN(len(nouns))]
	}
	s := np() + " " + verbs[r.IntN(len(verbs))] + " " + np()
	if r.IntN(3) == 0 {
		s += " " + places[r.IntN(len(places))]
	}
	return s + "."
}

// Backwards spells every word of s backwards, keeping the full stop at
// the end: "the cat sees a dog." becomes "eht tac sees a god.".
func Backwards(s string) string {
	s = strings.TrimSuffix(s, ".")
	words := strings.Fields(s)
	for i, w := range words {
		b := []byte(w)
		for l, h := 0, len(b)-1; l < h; l, h = l+1, h-1 {
			b[l], b[h] = b[h], b[l]
		}
		words[i] = string(b)
	}
	return strings.Join(words, " ") + "."
}

func write(path string, lines []string) error {
	return atomicfile.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func main() {
	out := flag.String("out", "cmd/train/data", "output directory")
	seed := flag.Uint64("seed", 1, "generator seed")
	nBase := flag.Int("base", 8000, "base corpus sentences")
	nTask := flag.Int("task", 2000, "new-task training sentences")
	nEval := flag.Int("eval", 200, "sentences in each eval file")
	flag.Parse()
	r := rand.New(rand.NewPCG(*seed, 0))
	gen := func(n int, f func(string) string) []string {
		lines := make([]string, n)
		for i := range lines {
			lines[i] = f(Sentence(r))
		}
		return lines
	}
	same := func(s string) string { return s }
	files := []struct {
		name  string
		lines []string
	}{
		{"base_train.txt", gen(*nBase, same)},
		{"base_eval.txt", gen(*nEval, same)},
		{"task_train.txt", gen(*nTask, Backwards)},
		{"task_eval.txt", gen(*nEval, Backwards)},
	}
	for _, f := range files {
		if err := write(filepath.Join(*out, f.name), f.lines); err != nil {
			fmt.Fprintln(os.Stderr, "gendata:", err)
			os.Exit(1)
		}
	}
}
