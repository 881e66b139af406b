package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/golora/golora/tokenizer"
)

func Example() {
	// A tiny Llama-2 style tokenizer: "▁" for spaces, byte fallback, and
	// a "<s> $A" template.
	tk, err := tokenizer.Load("testdata/tiny/tokenizer.json")
	if err != nil {
		log.Fatal(err)
	}
	ids, err := tk.Encode("ab c!", true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ids)
	text, err := tk.Decode(ids, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)

	// Streaming: pieces come out as ids arrive; the first half of "é"
	// (byte C3) yields nothing until its second byte (A9) arrives.
	ds := tk.NewDecodeStream(true)
	for _, id := range []int64{11, 4, 5} {
		piece, err := ds.Step(id)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%q ", piece)
	}
	fmt.Println()
	// Output:
	// [1 11 13 3]
	// "ab c!"
	// "ab" "" "é"
}
