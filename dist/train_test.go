package dist_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/golora/golora/dist"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/optim"
	"github.com/golora/golora/torch"
)

// trainRun trains a two-layer LoRA model (16→32→16, r=4, frozen W0 from
// seed 0) for steps AdamW steps with MSE on a fixed data set, global batch
// 8. With a group of world w, rank r takes rows [8i + r·8/w, 8i +
// (r+1)·8/w) of step i and the gradients are averaged (DataParallel);
// without one (g == nil) it takes all 8 rows. die > 0 makes the process
// exit at that step, as a crash would. It returns the adapters' tensors by
// name.
func trainRun(g *dist.Group, steps, die int) (map[string]*torch.Tensor, error) {
	const d, h, batch, rows = 16, 32, 8, 64
	if err := torch.ManualSeed(0); err != nil {
		return nil, err
	}
	l1, err := lora.NewLinear(d, h, true, 4)
	if err != nil {
		return nil, err
	}
	l2, err := lora.NewLinear(h, d, true, 4)
	if err != nil {
		return nil, err
	}
	model := &mlp{L1: l1, L2: l2}
	module.Child(&model.Base, "l1", &model.L1)
	module.Child(&model.Base, "l2", &model.L2)
	defer module.Close(model)
	// B starts at zero; give it values so that A trains from step 1.
	if err := torch.NoGrad(func() error {
		for _, p := range module.NamedParameters(model) {
			if strings.HasSuffix(p.Name, "lora_b") {
				if err := p.Tensor.Normal_(0, 0.1); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	x := torch.Randn([]int64{rows, d})
	y := torch.Randn([]int64{rows, d})
	defer torch.CloseAll(x, y)
	params := module.Parameters(model, true)
	world, rank := 1, 0
	var dp *dist.DataParallel
	if g != nil {
		world, rank = g.WorldSize(), g.Rank()
		if dp, err = dist.NewDataParallel(g, params); err != nil {
			return nil, err
		}
	}
	opt, err := optim.NewAdamW(params, optim.LR(1e-2))
	if err != nil {
		return nil, err
	}
	defer opt.Close()
	per := batch / world
	for i := 0; i < steps; i++ {
		if die > 0 && i == die {
			fmt.Println("dying at step", i)
			os.Exit(9)
		}
		s := torch.NewScope()
		off := int64((i*batch)%rows + rank*per)
		xb := s.Borrow(x).Narrow(0, off, int64(per))
		yb := s.Borrow(y).Narrow(0, off, int64(per))
		loss := torch.MSELoss(model.Forward(xb), yb, torch.ReductionMean)
		if err := loss.Backward(); err != nil {
			s.Close()
			return nil, err
		}
		if dp != nil {
			if err := dp.SyncGrads(); err != nil {
				s.Close()
				return nil, err
			}
		}
		if err := opt.Step(); err != nil {
			s.Close()
			return nil, err
		}
		if err := opt.ZeroGrad(); err != nil {
			s.Close()
			return nil, err
		}
		s.Close()
	}
	out := map[string]*torch.Tensor{}
	for _, p := range module.NamedParameters(model) {
		if p.Tensor.RequiresGrad() {
			out[p.Name] = p.Tensor.Detach().Clone()
		}
	}
	return out, nil
}

type mlp struct {
	module.Base
	L1, L2 *lora.Linear
}

func (m *mlp) Forward(x *torch.Tensor) *torch.Tensor { return m.L2.Forward(m.L1.Forward(x).Relu()) }
