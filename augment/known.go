package augment

// KnownValue is one normalisation case with its exact float32 result, for
// checking an implementation of the contract (the GPU kernel) without
// trusting this package's code. Out is math.Float32bits of the result of
// normalising the pixel value V with Mean, Std and lighting Offset.
type KnownValue struct {
	Note              string
	V                 uint8
	Mean, Std, Offset float32
	Out               uint32
}

// KnownValues were computed outside Go, by emulating each float32
// operation of the contract with a double-precision operation rounded back
// to single (exact for one add, multiply or divide). Every input is exactly
// representable as float32. The last three cases each give a different
// answer under a tempting but wrong evaluation, so a kernel that divides,
// reorders or fuses fails at least one.
var KnownValues = []KnownValue{
	{"identity", 0, 0.0, 1.0, 0.0, 0x00000000},                                                                                          // 0.0
	{"identity", 255, 0.0, 1.0, 0.0, 0x437f0000},                                                                                        // 255.0
	{"mean only", 255, 127.30000305175781, 1.0, 0.0, 0x42ff6666},                                                                        // 127.69999694824219
	{"mean only", 0, 127.30000305175781, 1.0, 0.0, 0xc2fe999a},                                                                          // -127.30000305175781
	{"torchvision R mean/std", 0, 123.67500305175781, 58.39500045776367, 0.0, 0xc0078bbd},                                               // -2.1179039478302
	{"torchvision R mean/std", 1, 123.67500305175781, 58.39500045776367, 0.0, 0xc006732b},                                               // -2.1007792949676514
	{"torchvision R mean/std", 128, 123.67500305175781, 58.39500045776367, 0.0, 0x3d97af22},                                             // 0.07406450808048248
	{"torchvision R mean/std", 254, 123.67500305175781, 58.39500045776367, 0.0, 0x400ed58a},                                             // 2.231783390045166
	{"torchvision R mean/std", 255, 123.67500305175781, 58.39500045776367, 0.0, 0x400fee1d},                                             // 2.248908281326294
	{"torchvision G", 117, 116.27999877929688, 57.119998931884766, 0.0, 0x3c4e8578},                                                     // 0.012605063617229462
	{"torchvision B", 3, 103.52999877929688, 57.375, 0.0, 0xbfe046ad},                                                                   // -1.7521568536758423
	{"cuda-convnet2 mean, std 1", 200, 104.91000366210938, 1.0, 0.0, 0x42be2e14},                                                        // 95.08999633789062
	{"lighting offset", 128, 123.67500305175781, 58.39500045776367, 7.40592622756958, 0x3e4db5e8},                                       // 0.2008892297744751
	{"lighting offset", 128, 123.67500305175781, 58.39500045776367, -12.178000450134277, 0xbe09b54b},                                    // -0.13448064029216766
	{"not clamped below 0", 2, 123.67500305175781, 58.39500045776367, -30.5, 0xc026c80a},                                                // -2.605959415435791
	{"not clamped above 255", 250, 123.67500305175781, 58.39500045776367, 21.25, 0x4021bd68},                                            // 2.5271854400634766
	{"offset cancels mean", 77, 104.91000366210938, 57.375, 104.91000366210938, 0x3fabc83a},                                             // 1.342047929763794
	{"differs if divided by std", 107, 94.69297790527344, 41.1338996887207, 4.37174654006958, 0x3ecf9a6e},                               // 0.40547508001327515
	{"differs if mean is subtracted before adding offset", 117, 119.55767059326172, 44.08908462524414, -0.6988412737846375, 0xbd97450d}, // -0.07386217266321182
	{"differs if computed as a fused v*scale + bias*scale", 110, 138.4520263671875, 69.03410339355469, -13.38471794128418, 0xbf1b24ca},  // -0.6060301065444946
}
