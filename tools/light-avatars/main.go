// light-avatars: many light simulated avatars in one process, for the Runway simulator at scale
// (src/runway-sim/pion-avatar.ts). Each avatar is a LiveKit participant (server-sdk-go / pion) that
// publishes one tiny VP8 video track at 1 fps (enough for LiveKit to list it as publishing video),
// reports peers and END_CALL data messages, and leaves on command.
//
// stdin, one JSON object per line:
//   {"op":"join","id":"a1","url":"ws://…","token":"…"}
//   {"op":"data","id":"a1","payload":"{…}","topic":"runway"}   reliable data message
//   {"op":"freeze","id":"a1"}                                   stop sending frames, stay in the room
//   {"op":"leave","id":"a1"}
// stdout, one JSON object per line:
//   {"ev":"joined","id":"a1","identity":"…"} | {"ev":"join_failed","id":"a1","error":"…"}
//   {"ev":"peer","id":"a1","identity":"…"}    (first participant other than itself)
//   {"ev":"end_call","id":"a1","from":"…"}    (a data message {"type":"END_CALL"})
//   {"ev":"disconnected","id":"a1","reason":"…"} (lost the room without a leave)
//   {"ev":"left","id":"a1"}
//   {"ev":"stats","avatars":N,"frames":N}     every 10 s
// stdin closed: every avatar leaves and the process exits.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

type command struct {
	Op      string `json:"op"`
	ID      string `json:"id"`
	URL     string `json:"url"`
	Token   string `json:"token"`
	Payload string `json:"payload"`
	Topic   string `json:"topic"`
}

type avatar struct {
	id      string
	room    *lksdk.Room
	leaving atomic.Bool
	frozen  atomic.Bool
	peer    atomic.Bool
	endCall atomic.Bool
	stop    chan struct{}
}

var (
	outMu   sync.Mutex
	out     = bufio.NewWriter(os.Stdout)
	mu      sync.Mutex
	avatars = map[string]*avatar{}
	frames  atomic.Int64
)

func emit(v map[string]any) {
	b, _ := json.Marshal(v)
	outMu.Lock()
	out.Write(b)
	out.WriteByte('\n')
	out.Flush()
	outMu.Unlock()
}

// A minimal VP8 key frame header (frame tag, start code, 16x16); the SFU forwards it without decoding.
var vp8Frame = []byte{0x50, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88, 0x85, 0x84, 0x88, 0x02, 0x02, 0x00, 0x0c, 0x0d, 0x60, 0x00, 0xfe, 0xff, 0xab, 0x50, 0x80}

func (a *avatar) notePeer(identity string) {
	if identity == "" || a.peer.Swap(true) {
		return
	}
	emit(map[string]any{"ev": "peer", "id": a.id, "identity": identity})
}

func join(c command) {
	a := &avatar{id: c.ID, stop: make(chan struct{})}
	cb := lksdk.NewRoomCallback()
	cb.OnParticipantConnected = func(p *lksdk.RemoteParticipant) { a.notePeer(p.Identity()) }
	cb.OnDataPacket = func(data lksdk.DataPacket, params lksdk.DataReceiveParams) {
		u, ok := data.(*lksdk.UserDataPacket)
		if !ok {
			return
		}
		var msg struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(u.Payload, &msg) == nil && msg.Type == "END_CALL" && !a.endCall.Swap(true) {
			emit(map[string]any{"ev": "end_call", "id": a.id, "from": params.SenderIdentity})
		}
	}
	cb.OnDisconnectedWithReason = func(reason lksdk.DisconnectionReason) {
		if !a.leaving.Load() {
			emit(map[string]any{"ev": "disconnected", "id": a.id, "reason": fmt.Sprint(reason)})
			a.close(false)
		}
	}
	room, err := lksdk.ConnectToRoomWithToken(c.URL, c.Token, cb, lksdk.WithAutoSubscribe(false))
	if err != nil {
		emit(map[string]any{"ev": "join_failed", "id": c.ID, "error": err.Error()})
		return
	}
	a.room = room
	track, err := lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000})
	if err == nil {
		_, err = room.LocalParticipant.PublishTrack(track, &lksdk.TrackPublicationOptions{Name: "avatar_video", Source: 1 /* CAMERA */, VideoWidth: 16, VideoHeight: 16})
	}
	if err != nil {
		a.leaving.Store(true)
		room.Disconnect()
		emit(map[string]any{"ev": "join_failed", "id": c.ID, "error": "publish: " + err.Error()})
		return
	}
	mu.Lock()
	if old := avatars[c.ID]; old != nil {
		go old.close(true)
	}
	avatars[c.ID] = a
	mu.Unlock()
	emit(map[string]any{"ev": "joined", "id": c.ID, "identity": room.LocalParticipant.Identity()})
	for _, p := range room.GetRemoteParticipants() {
		a.notePeer(p.Identity())
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			if !a.frozen.Load() {
				if track.WriteSample(media.Sample{Data: vp8Frame, Duration: time.Second}, nil) == nil {
					frames.Add(1)
				}
			}
			select {
			case <-a.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (a *avatar) close(announce bool) {
	if a.leaving.Swap(true) && announce {
		return
	}
	mu.Lock()
	if avatars[a.id] == a {
		delete(avatars, a.id)
	}
	mu.Unlock()
	select {
	case <-a.stop:
	default:
		close(a.stop)
	}
	if a.room != nil {
		a.room.Disconnect()
	}
	if announce {
		emit(map[string]any{"ev": "left", "id": a.id})
	}
}

func find(id string) *avatar {
	mu.Lock()
	defer mu.Unlock()
	return avatars[id]
}

func main() {
	go func() {
		for range time.Tick(10 * time.Second) {
			mu.Lock()
			n := len(avatars)
			mu.Unlock()
			emit(map[string]any{"ev": "stats", "avatars": n, "frames": frames.Load()})
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var c command
		if err := json.Unmarshal(in.Bytes(), &c); err != nil || c.ID == "" {
			continue
		}
		switch c.Op {
		case "join":
			go join(c)
		case "leave":
			if a := find(c.ID); a != nil {
				go a.close(true)
			} else {
				emit(map[string]any{"ev": "left", "id": c.ID})
			}
		case "freeze":
			if a := find(c.ID); a != nil {
				a.frozen.Store(true)
			}
		case "data":
			if a := find(c.ID); a != nil {
				go a.room.LocalParticipant.PublishDataPacket(&lksdk.UserDataPacket{Payload: []byte(c.Payload), Topic: c.Topic}, lksdk.WithDataPublishReliable(true))
			}
		}
	}
	mu.Lock()
	all := make([]*avatar, 0, len(avatars))
	for _, a := range avatars {
		all = append(all, a)
	}
	mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Add(1)
		go func(a *avatar) { defer wg.Done(); a.close(true) }(a)
	}
	wg.Wait()
}
