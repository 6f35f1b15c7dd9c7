// Package goolm stops a build without the goolm tag (see required.go). It
// has no dependencies, so its error is reported even when the build also
// fails in mautrix's cgo fallback, which would otherwise hide it.
package goolm
