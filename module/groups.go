package module

import (
	"fmt"
	"path"

	"github.com/golora/golora/torch"
)

// DefaultGroup is the name of the group that Groups returns last, holding
// the trainable parameters that no Group matched.
const DefaultGroup = "default"

// Group selects parameters by name for an optimizer's parameter group.
// Match holds glob patterns in path.Match's syntax, matched against the
// whole dotted name, where '*' also matches dots: "*.bias" is every bias
// at any depth, "*norm*.weight" every weight of a module whose path
// contains "norm" ("layers.0.input_norm.weight", "final_norm.weight"),
// "bias" a bias of the root module only.
type Group struct {
	Name  string
	Match []string
}

// ParamGroup is a group's name and its parameters in registration order.
type ParamGroup struct {
	Name   string
	Params []NamedParameter
}

// Tensors returns the group's parameter tensors.
func (g ParamGroup) Tensors() []*torch.Tensor {
	out := make([]*torch.Tensor, len(g.Params))
	for i, p := range g.Params {
		out[i] = p.Tensor
	}
	return out
}

// Groups sorts m's trainable parameters into the groups given, in order,
// plus a last group named DefaultGroup for the rest: each parameter goes
// to the first group with a matching pattern, so every trainable parameter
// is in exactly one group. Frozen parameters are in none. A group that
// matches nothing is returned empty. The usual split for AdamW:
//
//	groups, err := module.Groups(model,
//		module.Group{Name: "no_decay", Match: []string{"*.bias", "*norm*.weight"}})
//	// groups[0]: no weight decay; groups[1] (DefaultGroup): weight decay
//
// It is an error to pass a nil module, a group without a name, two groups
// of one name, a group named DefaultGroup, or a malformed pattern.
func Groups(m Module, groups ...Group) ([]ParamGroup, error) {
	if isNil(m) {
		return nil, errNil("Groups")
	}
	seen := map[string]bool{DefaultGroup: true}
	for _, g := range groups {
		switch {
		case g.Name == "":
			return nil, fmt.Errorf("module: Groups: a group has no name")
		case g.Name == DefaultGroup:
			return nil, fmt.Errorf("module: Groups: %q is the name of the group of unmatched parameters", DefaultGroup)
		case seen[g.Name]:
			return nil, fmt.Errorf("module: Groups: two groups are named %q", g.Name)
		}
		seen[g.Name] = true
		for _, p := range g.Match {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("module: Groups: group %q: pattern %q: %w", g.Name, p, err)
			}
		}
	}
	out := make([]ParamGroup, len(groups)+1)
	for i, g := range groups {
		out[i].Name = g.Name
	}
	out[len(groups)].Name = DefaultGroup
	for _, p := range NamedParameters(m) {
		if !p.Trainable {
			continue
		}
		i := len(groups)
	search:
		for j, g := range groups {
			for _, pat := range g.Match {
				if ok, _ := path.Match(pat, p.Name); ok {
					i = j
					break search
				}
			}
		}
		out[i].Params = append(out[i].Params, p)
	}
	return out, nil
}
