// Package imageio owns turning an image file's bytes into the paper's
// preprocessed pixels: content sniffing, decoding to 8-bit RGB, resizing
// the shorter side to a size and cropping the centre square. ingest calls
// Decoder.Preprocess once per file.
//
// # Decoders
//
// JPEG goes through libjpeg-turbo's TurboJPEG API, loaded at run time with
// purego (libturbojpeg.so.0), so the module still builds with
// CGO_ENABLED=0. Without the library, and for PNG, GIF, BMP, WebP and TIFF
// always, the Go decoders are used; Backend says which one is active and
// why. The format comes from the leading bytes, never the file name:
// ILSVRC2012 has a PNG named .JPEG.
//
// libjpeg reports damage it decodes past as warnings (Decoder.Warning);
// image/jpeg decodes past the same damage in silence, so on that path a
// kept JPEG's coded data (sequential or progressive) is walked again
// (jpegScanWarning) to name it in libjpeg's words.
//
// A Decoder owns a TurboJPEG handle and scratch memory and is not safe for
// concurrent use: create one per worker goroutine. ResizeShortCrop,
// ResizedSize, Sniff and Backend are safe for concurrent use.
//
// Colour: grayscale is replicated to RGB; alpha is dropped (Pillow's
// convert("RGB")), and a GIF's transparent index keeps its palette colour
// as it does there; 16-bit samples keep their high byte (Pillow 9.4 clips
// a 16-bit grayscale PNG's values to 255 instead, nearly all white); CMYK and YCCK
// JPEGs are taken, as Pillow and Photoshop do, to store inverted ink and
// are converted with Pillow's formula, because libjpeg cannot convert them
// to RGB itself. EXIF orientation is ignored, as it is by Image.open.
//
// # Pixels match Pillow
//
// The reference is what a user would script with Pillow:
//
//	im = Image.open(f).convert("RGB")
//	w, h = im.size  # shorter side to 256, longer side long*256//short
//	im = im.resize((nw, nh), Image.BILINEAR).crop(((nw-256)//2, (nh-256)//2, ...))
//
// ResizeShortCrop implements Pillow's bilinear resampling (a triangle
// filter widened by the downscale factor, 22-bit fixed-point weights,
// horizontal pass then vertical through an 8-bit intermediate) and computes
// only the crop window. On Pillow's own decoded pixels it is bit-identical
// (TestResizeMatchesPILExactly), and since Debian's Pillow uses the same
// libjpeg-turbo, a full-size Preprocess is bit-identical to the script
// above (25 of 26 test images; TestPreprocessMatchesPIL).
//
// The 26th is DCT-scaled. For a JPEG whose shorter side is at least twice
// minShort, DecodeForSize lets libjpeg-turbo decode at 1/2, 1/4 or 1/8
// scale, which skips most of the inverse DCT and colour conversion.
// Two-stage shrinking is not Pillow's one-stage resize, so how far
// Preprocess may scale was measured against the full-size Pillow output on
// the sample (mean absolute difference per channel value, tolerance 2):
//
//	scaled shorter side ≥ 1.0 x size: 3 of 11 images over 2, worst 6.9 (a fire engine's grille)
//	                    ≥ 1.4 x size: at size 224, one at 4.0
//	                    ≥ 1.5 x size: none over 2 at 256 or 224, worst 1.49
//	                    ≥ 2.0 x size: worst 0.58 (the default)
//	libjpeg-turbo's m/8 factors (7/8, 3/4, ...): MAD up to 21
//
// So Preprocess asks for a shorter side of at least 2*size, and only
// power-of-two factors are used: at 256 that scales images whose shorter
// side is 1024 or more (1 of the 200 samples), the ones whose full-size
// decode costs most (1280x1024: 6.5 ms full, 4.7 ms at 1/4 scale; entropy
// decoding, which scaling cannot skip, is the rest). Below 128 px the
// shorter side kept is at least 256 (dctScaleFloor): twice a 32-px output
// was a block average too coarse for Pillow's wide triangle (3.0 levels at
// worst; 0.57 with the floor). Either way the resize and crop are computed
// from the file's own size (Image.SrcW, SrcH), not the scaled one.
//
// The stdlib path's image/jpeg differs from libjpeg-turbo in chroma
// upsampling and IDCT: up to 1.9 levels mean difference at full size, and
// within 0.4 of Pillow after resizing to 256 on the test's photos, 0.8 on
// the worst of the whole 200-photo sample.
//
// # Errors
//
// Files that cannot be used give *FormatError (empty, truncated, corrupt,
// not an image: "not an image: unknown signature 3c21444f...") or
// *UnsupportedError (12-bit or lossless JPEG, dimensions beyond MaxSide or
// MaxPixels, refused from the header before any pixel memory is
// allocated). ingest reports and skips both; neither decoder panics or
// crashes on any input (FuzzDecode).
//
// # Memory
//
// Large decodes (an estimate from the header of 32 MB or more) share a
// process-wide budget, SetDecodeBudget, 2 GiB by default: each waits its
// turn for its estimate and gives it back when the caller is done with
// the pixels, so many workers meeting many huge images hold the budget,
// not each a gigabyte.
//
// A truncated file is an error wrapping ErrTruncated, on both backends
// alike: libjpeg's "Premature end of JPEG file", a JPEG without an EOI
// marker after its scan data, a header that runs off the end, or a PNG
// without IEND. Pillow would refuse these too unless LOAD_TRUNCATED_IMAGES
// is set. Other libjpeg warnings ("Corrupt JPEG data: 3 extraneous bytes
// before marker 0xda") describe damage libjpeg recovers from; Pillow
// accepts those files, and so does this package, keeping the text in
// Decoder.Warning for reports.
//
// Where the backends still differ, libjpeg-turbo's is the one that agrees
// with Pillow: it decodes arithmetic-coded JPEGs, CMYK JPEGs without an
// Adobe marker, and scans libjpeg recovers from with a warning (a segment
// cut short inside the file, "Corrupt JPEG data: premature end of data
// segment", its lost part grey; a lost restart marker), all of which
// image/jpeg refuses. A valid sampling TurboJPEG 2.1 has no name for goes
// to image/jpeg, which decodes 4:1:0 and refuses the rest (2x1 luma with
// 1x2 chroma, 3x1, ...): unsupported on both, and Pillow decodes them.
//
// # Speed
//
// Per image on the ImageNet sample (200 photos, mostly 500x375), one core
// of the development machine (AMD EPYC, 2 shared cores, so figures swing by
// 25%), Pillow run in the same rounds on the same core:
//
//	libjpeg-turbo decode only, full size   1.6-2.0 ms   480-630 img/s
//	Preprocess, libjpeg-turbo              1.8-2.5 ms   390-550 img/s
//	Preprocess, stdlib fallback            8-11 ms      90-125 img/s
//	ResizeShortCrop alone (AVX2)           0.25 ms for 500x375 -> 256 (1.1 ms in pure Go)
//	Pillow 9.4 open/convert/resize/crop    4.0-5.5 ms   180-250 img/s
//
// So decode + resize runs at about twice Pillow's rate, and libjpeg-turbo's
// own decode is now 80-85% of it. Reproduce with
// taskset -c 1 go test -run X -bench 'DecodeFull|Preprocess|Resize' ./pkg/imageio
// (cpu-ns/op is the thread's CPU time, steadier than ns/op when the
// machine is shared).
//
// The resize's inner loops are AVX2 assembly on amd64 (chosen at run time;
// pure Go elsewhere), checked byte for byte against a plain reference
// implementation in the tests, as are the Go loops.
package imageio
