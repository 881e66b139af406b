package lora_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// exampleModel is a two-block decoder (q, k, v and o projections in each).
func exampleModel() *decoder {
	torch.ManualSeed(0)
	model := &decoder{Layers: module.NewSequential()}
	for range 2 {
		a, _ := newAttention(16, 2)
		model.Layers.Append(a)
	}
	module.Child(&model.Base, "layers", &model.Layers)
	return model
}

// Two adapters on one base, switched per task: SetAdapter touches no
// weight and copies nothing.
func ExampleSetAdapter() {
	model := exampleModel()
	defer module.Close(model)
	cfg := lora.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}, Init: lora.InitRandom}
	lora.AddAdapter(model, "summarise", cfg)
	lora.AddAdapter(model, "translate", cfg)

	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{1, 3, 16}, torch.In(s))
	lora.SetAdapter(model, "summarise")
	y1 := model.Layers.Forward(x)
	lora.SetAdapter(model, "translate")
	y2 := model.Layers.Forward(x)
	var base *torch.Tensor
	lora.WithAdaptersDisabled(model, func() error { // re-enabled on return
		base = model.Layers.Forward(x)
		return nil
	})
	same := func(a, b *torch.Tensor) bool { ok, _ := a.AllClose(b, 0, 0); return ok }
	fmt.Println("adapters:", lora.AdapterNames(model))
	fmt.Println("summarise == translate:", same(y1, y2), "| translate == base:", same(y2, base))
	// Output:
	// adapters: [summarise translate]
	// summarise == translate: false | translate == base: false
}

// A mixed batch: each sample (dim 0) with its own adapter, "__base__" for
// none, in one forward, like PEFT's adapter_names=.
func ExampleWithAdapterNames() {
	model := exampleModel()
	defer module.Close(model)
	cfg := lora.Config{R: 4, TargetModules: []string{"q_proj"}, Init: lora.InitRandom}
	lora.AddAdapter(model, "tenant-a", cfg)
	lora.AddAdapter(model, "tenant-b", cfg)

	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{3, 5, 16}, torch.In(s))
	err := lora.WithAdapterNames(model, []string{"tenant-b", lora.BaseAdapter, "tenant-a"}, func() error {
		y := model.Layers.Forward(x)
		fmt.Println("y:", y.Shape())
		return y.Err()
	})
	fmt.Println("err:", err)
	// Output:
	// y: [3 5 16]
	// err: <nil>
}

// Saving for PEFT: PeftModel.from_pretrained(model, dir) reads these
// files; lora.LoadAdapter reads what PEFT's save_pretrained writes.
func ExampleSaveAdapter() {
	model := exampleModel()
	defer module.Close(model)
	lora.Apply(model, lora.Config{R: 4, Alpha: 8, TargetModules: []string{"q_proj", "v_proj"}})
	lora.AddAdapter(model, "second", lora.Config{R: 2, TargetModules: []string{"o_proj"}})

	dir, _ := os.MkdirTemp("", "adapter")
	defer os.RemoveAll(dir)
	for _, name := range []string{"default", "second"} {
		if err := lora.SaveAdapter(model, dir, name); err != nil {
			fmt.Println(err)
			return
		}
	}
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, rel)
		}
		return nil
	})
	sort.Strings(files)
	fmt.Println(files)

	// Load them into a fresh copy of the base.
	fresh := exampleModel()
	defer module.Close(fresh)
	fmt.Println(lora.LoadAdapter(fresh, dir, "default"), lora.LoadAdapter(fresh, dir, "second"), lora.AdapterNames(fresh))
	// Output:
	// [adapter_config.json adapter_model.safetensors second/adapter_config.json second/adapter_model.safetensors]
	// <nil> <nil> [default second]
}

// Merging for deployment: the adapter is folded into the weights (in
// float32) and the model is the plain base again, at no extra cost.
func ExampleMergeAndUnload() {
	model := exampleModel()
	defer module.Close(model)
	lora.Apply(model, lora.Config{R: 4, TargetModules: []string{"q_proj"}, Init: lora.InitRandom})
	s := torch.NewScope()
	defer s.Close()
	x := torch.Randn([]int64{2, 3, 16}, torch.In(s))
	y := model.Layers.Forward(x)

	if _, err := lora.MergeAndUnload(model); err != nil {
		fmt.Println(err)
		return
	}
	q := model.Layers.Layers[0].(*attention).QProj
	ok, _ := model.Layers.Forward(x).AllClose(y, 1e-5, 1e-6)
	fmt.Printf("q_proj is a %T; same output: %v\n", q, ok)
	// Output:
	// q_proj is a *module.Linear; same output: true
}
