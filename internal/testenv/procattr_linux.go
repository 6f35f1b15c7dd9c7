package testenv

import "syscall"

// childProcAttr makes the kernel kill Dendrite when the test binary dies
// without running its cleanups (a timeout panic, SIGKILL, Ctrl-C), so that no
// homeserver outlives its tests. The signal follows the OS thread that
// started the child, which Go keeps alive unless a goroutine exits while
// locked to it with runtime.LockOSThread; tests must not start homeservers
// from such goroutines.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
