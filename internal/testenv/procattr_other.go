//go:build !linux

package testenv

import "syscall"

// childProcAttr cannot tie Dendrite's life to the test binary's outside Linux;
// Main and the test cleanups still stop it on an orderly exit.
func childProcAttr() *syscall.SysProcAttr { return nil }
