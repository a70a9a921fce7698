package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// pidBuckets is how many concurrent maps hold the actor system's local
// PIDs (each of cmap.SHARD_COUNT shards).
const pidBuckets = 32

// shrinkPIDRegistry gives the actor system a PID registry of pidBuckets
// concurrent maps instead of protoactor's 1024. Each of those has 32
// shards, each shard a Go map: 32,768 maps, 2.6 MB before the first actor,
// and while there are fewer actors than maps nearly every actor (two per
// client) fills a map of its own, ~210 bytes an actor. With 1,024 maps the
// entries share them, ~50 bytes an actor. Lock contention does not
// change: a PID caches its process after the first lookup, so the registry
// is used at spawn and stop. The entries made so far (the system's own
// processes) move over; call it right after NewActorSystem.
func shrinkPIDRegistry(sys *actor.ActorSystem) {
	old := sys.ProcessRegistry.LocalPIDs
	sm := &actor.SliceMap{LocalPIDs: make([]cmap.ConcurrentMap, pidBuckets)}
	for i := range sm.LocalPIDs {
		sm.LocalPIDs[i] = cmap.New()
	}
	for _, bucket := range old.LocalPIDs {
		bucket.IterCb(func(id string, p any) { sm.GetBucket(id).Set(id, p) })
	}
	sys.ProcessRegistry.LocalPIDs = sm
}
