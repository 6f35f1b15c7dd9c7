//go:build !goolm

package goolm

// mxircd encrypts with goolm, mautrix's pure-Go Olm, chosen by the build tag
// goolm. Without the tag mautrix's crypto package links libolm through cgo
// instead: a deprecated C library with known timing side channels, which a
// gateway holding many accounts' keys must not run. So a build without the
// tag stops here, on an identifier that names the fix, rather than falling
// back to it:
//
//	go run -tags goolm ./cmd/mxircd
//	go test -tags goolm -race -timeout 30m ./...
//
// (Editors and linters need the tag too, e.g. gopls "buildFlags": ["-tags=goolm"].)
var _ = mxircd_must_be_built_with_tags_goolm__see_README
