package main

import "github.com/mxircd/mxircd/metrics"

// watch exports to the gateway's metrics the counts its sessions and IRC
// server keep, read on each scrape. After both exist, before any client.
func (g *gateway) watch() {
	g.metrics.Watch(metrics.Sources{
		Sessions: func() metrics.SessionStates {
			starting, syncing, live := g.sessions.SessionStates()
			return metrics.SessionStates{Starting: starting, Syncing: syncing, Live: live}
		},
		AttachedClients:    g.sessions.AttachedClients,
		Lurkers:            g.sessions.Lurkers,
		Connections:        g.irc.ConnCount,
		MessagesToMatrix:   g.sessions.MessagesToMatrix,
		MessagesFromMatrix: g.sessions.MessagesFromMatrix,
		SendQDrops:         g.irc.SendQDrops,
	})
}
