package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// npmPackageFiles pin what npm installs; their hash names the install.
var npmPackageFiles = []string{"package.json", "package-lock.json"}

// NPMPackages installs what src's package.json and package-lock.json pin
// (npm ci) into CacheRoot/name-KEY, KEY being the hash of those files,
// unless an earlier run on this machine has, and returns that directory.
// It is filled by rename, so a directory that exists is complete; test
// binaries wanting it at once wait for each other. hint says how to get
// npm when it is missing.
func NPMPackages(src, name, hint string, logf func(string, ...any)) (string, error) {
	key, err := hashFiles(src, npmPackageFiles...)
	if err != nil {
		return "", err
	}
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	dir := filepath.Join(root, name+"-"+key)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	unlock, err := LockFile(dir+".lock", "installing the npm packages of "+name, logf)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("no npm on PATH: %s", hint)
	}
	tmp, err := os.MkdirTemp(root, name+"-"+key+".tmp-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, f := range npmPackageFiles {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			return "", err
		}
	}
	start := time.Now()
	logf("%s: installing npm packages into %s (once per machine)", name, dir)
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--no-update-notifier")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s (in %s): %w\n%s", strings.Join(cmd.Args, " "), tmp, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	logf("%s: installed in %v", name, time.Since(start).Round(time.Millisecond))
	return dir, nil
}

func hashFiles(dir string, names ...string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// PlaceScript copies src/name next to the packages installed in dir,
// because node resolves a module's imports from where the module lies. The
// copy is named by its content, so editing the script needs no reinstall
// and test binaries running different versions of it do not disturb each
// other.
func PlaceScript(src, name, dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(src, name))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	ext := filepath.Ext(name)
	path := filepath.Join(dir, strings.TrimSuffix(name, ext)+"-"+hex.EncodeToString(sum[:8])+ext)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	f, err := os.CreateTemp(dir, name+".*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}
