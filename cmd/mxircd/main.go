// Command mxircd is an IRC server whose network is Matrix.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	configPath := flag.String("config", "config.toml", "path to the configuration file")
	flag.Parse()

	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mxircd:", err)
		os.Exit(2)
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)

	ctx := context.Background()
	g, err := startGateway(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		os.Exit(1)
	}
	log.Info("mxircd started", "version", version)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for sig := range signals {
		if sig == syscall.SIGHUP {
			if err := g.reload(); err != nil {
				log.Error("reload failed; keeping the old certificate", "err", err)
			} else {
				log.Info("reloaded")
			}
			continue
		}
		log.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
		err := g.shutdown(ctx)
		cancel()
		if err != nil {
			log.Error("shutdown was not clean", "err", err)
			os.Exit(1)
		}
		log.Info("stopped")
		os.Exit(0)
	}
}

func newLogger(cfg LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated in loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
