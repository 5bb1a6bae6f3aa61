package trainer

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schedule is the learning-rate schedule and its state, saved in
// checkpoints so a resumed run continues it exactly.
//
// "plateau" is the paper's: divide by 10 when the validation error has not
// improved for Patience epochs, at most MaxDrops times. "step:N" divides by
// 10 every N epochs.
type Schedule struct {
	Kind       string  `json:"kind"`
	StepEpochs int     `json:"step_epochs,omitempty"`
	Patience   int     `json:"patience"`
	MaxDrops   int     `json:"max_drops"`
	LR         float64 `json:"lr"`
	Best       float64 `json:"best_val_error"`
	BadEpochs  int     `json:"bad_epochs"`
	Drops      int     `json:"drops"`
}

// noBest is Best before a rate's first epoch: above any error rate, so
// that epoch sets it.
const noBest = 2

// ParseSchedule reads --schedule.
func ParseSchedule(s string, lr float64, patience int) (Schedule, error) {
	sc := Schedule{LR: lr, Patience: patience, MaxDrops: 3, Best: noBest}
	switch {
	case s == "plateau":
		sc.Kind = "plateau"
	case strings.HasPrefix(s, "step:"):
		n, err := strconv.Atoi(s[5:])
		if err != nil || n <= 0 {
			return sc, fmt.Errorf("schedule %q: want step:N with N a positive number of epochs", s)
		}
		sc.Kind, sc.StepEpochs = "step", n
	default:
		return sc, fmt.Errorf("unknown schedule %q (want plateau or step:N)", s)
	}
	return sc, nil
}

// check refuses a schedule that ParseSchedule and EndEpoch could not
// have made: one read from a hand-made checkpoint, whose CRC is valid.
// Without it a step schedule of 0 epochs divides by zero an epoch later.
func (s Schedule) check() error {
	switch {
	case s.Kind != "plateau" && s.Kind != "step":
		return fmt.Errorf("unknown kind %q", s.Kind)
	case s.Kind == "step" && s.StepEpochs < 1:
		return fmt.Errorf("step schedule every %d epochs", s.StepEpochs)
	case !(s.LR > 0) || math.IsInf(s.LR, 0):
		return fmt.Errorf("learning rate %g", s.LR)
	case s.Patience < 0 || s.MaxDrops < 0 || s.BadEpochs < 0 || s.Drops < 0:
		return fmt.Errorf("patience %d, max drops %d, bad epochs %d, drops %d", s.Patience, s.MaxDrops, s.BadEpochs, s.Drops)
	case math.IsNaN(s.Best):
		return fmt.Errorf("best validation error %g", s.Best)
	}
	return nil
}

// EndEpoch updates the schedule after epoch (1-based count of finished
// epochs) with that epoch's validation error; it reports whether lr fell.
func (s *Schedule) EndEpoch(epoch int, valErr float64) bool {
	switch s.Kind {
	case "step":
		if epoch%s.StepEpochs == 0 {
			s.LR /= 10
			s.Drops++
			return true
		}
	case "plateau":
		// Best is the current rate's, reset at each drop: the paper
		// divides "when the validation error rate stopped improving with
		// the current learning rate". (Checkpoints from builds that kept
		// the run's best go on with it until their next drop.)
		if valErr < s.Best {
			s.Best, s.BadEpochs = valErr, 0
			return false
		}
		s.BadEpochs++
		if s.BadEpochs >= s.Patience && s.Drops < s.MaxDrops {
			s.LR /= 10
			s.Drops++
			s.BadEpochs, s.Best = 0, noBest
			return true
		}
	}
	return false
}
