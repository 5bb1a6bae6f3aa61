package augment

import (
	"fmt"
	"math/rand/v2"
)

// DefaultSigma is the paper's standard deviation for the lighting
// coefficients αᵢ.
const DefaultSigma = 0.1

// SigmaFor reads a lighting option the way the pipeline's Options.Sigma
// and train's --lighting are given: 0 means DefaultSigma, a negative value
// turns lighting off (0 is returned), anything else is the σ itself.
func SigmaFor(opt float32) float32 {
	switch {
	case opt < 0:
		return 0
	case opt == 0:
		return DefaultSigma
	}
	return opt
}

// Params is one training record's augmentation: the crop origin, whether
// to mirror, and the lighting coefficients for LightingOffset.
type Params struct {
	X, Y  int
	Flip  bool
	Alpha [3]float32
}

// Draw takes one record's Params from rng, in the order the package
// documentation fixes: X uniform in [0, srcW-crop], Y uniform in
// [0, srcH-crop], Flip with probability 1/2, then Alpha[0..2] ~ N(0, sigma)
// (all zero, drawing nothing, when sigma is 0). It panics if crop does not
// fit or sigma is negative or NaN.
func Draw(rng *rand.Rand, srcW, srcH, crop int, sigma float32) Params {
	if crop <= 0 || crop > srcW || crop > srcH {
		panic(fmt.Sprintf("augment: Draw: crop %d does not fit a %dx%d image", crop, srcW, srcH))
	}
	if !(sigma >= 0) {
		panic(fmt.Sprintf("augment: Draw: sigma %v is not a standard deviation", sigma))
	}
	var p Params
	p.X = rng.IntN(srcW - crop + 1)
	p.Y = rng.IntN(srcH - crop + 1)
	p.Flip = rng.Uint64()>>63 == 1
	if sigma != 0 {
		for i := range p.Alpha {
			p.Alpha[i] = float32(rng.NormFloat64() * float64(sigma))
		}
	}
	return p
}

// RecordRNG returns the generator for one record in one epoch. Workers
// that want no allocation per record can keep a PCG and a Rand over it and
// call pcg.Seed(RecordSeed(seed, epoch, recordID)) instead; the stream is
// the same.
func RecordRNG(seed uint64, epoch int, recordID uint64) *rand.Rand {
	return rand.New(rand.NewPCG(RecordSeed(seed, epoch, recordID)))
}

// RecordSeed derives the two PCG seed words for (seed, epoch, recordID).
//
// Each input is folded in through a bijective mixer, so for a fixed seed
// and epoch distinct records always get distinct seeds, and records of
// different epochs collide only by chance (about 2⁻⁶⁴ a pair). Both words
// come from the full hash: PCG's low state word evolves independently of
// the high one, so two streams sharing it would share that half of their
// state for ever.
func RecordSeed(seed uint64, epoch int, recordID uint64) (uint64, uint64) {
	h := mix64(seed)
	h = mix64(h ^ uint64(epoch))
	h = mix64(h ^ recordID)
	return h, mix64(h ^ 0x9e3779b97f4a7c15)
}

// mix64 is the SplitMix64 finaliser: a bijection on uint64 whose output
// bits each depend on every input bit.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
