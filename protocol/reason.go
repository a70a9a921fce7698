package protocol

import "strconv"

// ReasonCode is an MQTT 5.0 reason code (section 2.4). It is also a Go error,
// so a decoder can return the code the broker must answer with and callers can
// match it with errors.Is. Codes below 0x80 are successes; Error still works
// for them but a decoder never returns one as an error.
//
// For MQTT 3.1.1 the broker maps a ReasonCode to the 3.1.1 reaction (a
// CONNACK return code where one exists, otherwise closing the connection).
type ReasonCode byte

// Reason codes from table 2-6 of MQTT 5.0.
const (
	ReasonSuccess                             ReasonCode = 0x00 // also Normal disconnection, Granted QoS 0
	ReasonGrantedQoS1                         ReasonCode = 0x01
	ReasonGrantedQoS2                         ReasonCode = 0x02
	ReasonDisconnectWithWill                  ReasonCode = 0x04
	ReasonNoMatchingSubscribers               ReasonCode = 0x10
	ReasonNoSubscriptionExisted               ReasonCode = 0x11
	ReasonContinueAuthentication              ReasonCode = 0x18
	ReasonReAuthenticate                      ReasonCode = 0x19
	ReasonUnspecifiedError                    ReasonCode = 0x80
	ReasonMalformedPacket                     ReasonCode = 0x81
	ReasonProtocolError                       ReasonCode = 0x82
	ReasonImplementationSpecific              ReasonCode = 0x83
	ReasonUnsupportedProtocolVersion          ReasonCode = 0x84
	ReasonClientIdentifierNotValid            ReasonCode = 0x85
	ReasonBadUsernameOrPassword               ReasonCode = 0x86
	ReasonNotAuthorized                       ReasonCode = 0x87
	ReasonServerUnavailable                   ReasonCode = 0x88
	ReasonServerBusy                          ReasonCode = 0x89
	ReasonBanned                              ReasonCode = 0x8A
	ReasonServerShuttingDown                  ReasonCode = 0x8B
	ReasonBadAuthenticationMethod             ReasonCode = 0x8C
	ReasonKeepAliveTimeout                    ReasonCode = 0x8D
	ReasonSessionTakenOver                    ReasonCode = 0x8E
	ReasonTopicFilterInvalid                  ReasonCode = 0x8F
	ReasonTopicNameInvalid                    ReasonCode = 0x90
	ReasonPacketIdentifierInUse               ReasonCode = 0x91
	ReasonPacketIdentifierNotFound            ReasonCode = 0x92
	ReasonReceiveMaximumExceeded              ReasonCode = 0x93
	ReasonTopicAliasInvalid                   ReasonCode = 0x94
	ReasonPacketTooLarge                      ReasonCode = 0x95
	ReasonMessageRateTooHigh                  ReasonCode = 0x96
	ReasonQuotaExceeded                       ReasonCode = 0x97
	ReasonAdministrativeAction                ReasonCode = 0x98
	ReasonPayloadFormatInvalid                ReasonCode = 0x99
	ReasonRetainNotSupported                  ReasonCode = 0x9A
	ReasonQoSNotSupported                     ReasonCode = 0x9B
	ReasonUseAnotherServer                    ReasonCode = 0x9C
	ReasonServerMoved                         ReasonCode = 0x9D
	ReasonSharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ReasonConnectionRateExceeded              ReasonCode = 0x9F
	ReasonMaximumConnectTime                  ReasonCode = 0xA0
	ReasonSubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	ReasonWildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// Aliases with the names the standard uses in specific packets.
const (
	ReasonNormalDisconnection = ReasonSuccess
	ReasonGrantedQoS0         = ReasonSuccess
)

var reasonNames = map[ReasonCode]string{
	ReasonSuccess:                             "success",
	ReasonGrantedQoS1:                         "granted qos 1",
	ReasonGrantedQoS2:                         "granted qos 2",
	ReasonDisconnectWithWill:                  "disconnect with will message",
	ReasonNoMatchingSubscribers:               "no matching subscribers",
	ReasonNoSubscriptionExisted:               "no subscription existed",
	ReasonContinueAuthentication:              "continue authentication",
	ReasonReAuthenticate:                      "re-authenticate",
	ReasonUnspecifiedError:                    "unspecified error",
	ReasonMalformedPacket:                     "malformed packet",
	ReasonProtocolError:                       "protocol error",
	ReasonImplementationSpecific:              "implementation specific error",
	ReasonUnsupportedProtocolVersion:          "unsupported protocol version",
	ReasonClientIdentifierNotValid:            "client identifier not valid",
	ReasonBadUsernameOrPassword:               "bad user name or password",
	ReasonNotAuthorized:                       "not authorized",
	ReasonServerUnavailable:                   "server unavailable",
	ReasonServerBusy:                          "server busy",
	ReasonBanned:                              "banned",
	ReasonServerShuttingDown:                  "server shutting down",
	ReasonBadAuthenticationMethod:             "bad authentication method",
	ReasonKeepAliveTimeout:                    "keep alive timeout",
	ReasonSessionTakenOver:                    "session taken over",
	ReasonTopicFilterInvalid:                  "topic filter invalid",
	ReasonTopicNameInvalid:                    "topic name invalid",
	ReasonPacketIdentifierInUse:               "packet identifier in use",
	ReasonPacketIdentifierNotFound:            "packet identifier not found",
	ReasonReceiveMaximumExceeded:              "receive maximum exceeded",
	ReasonTopicAliasInvalid:                   "topic alias invalid",
	ReasonPacketTooLarge:                      "packet too large",
	ReasonMessageRateTooHigh:                  "message rate too high",
	ReasonQuotaExceeded:                       "quota exceeded",
	ReasonAdministrativeAction:                "administrative action",
	ReasonPayloadFormatInvalid:                "payload format invalid",
	ReasonRetainNotSupported:                  "retain not supported",
	ReasonQoSNotSupported:                     "qos not supported",
	ReasonUseAnotherServer:                    "use another server",
	ReasonServerMoved:                         "server moved",
	ReasonSharedSubscriptionsNotSupported:     "shared subscriptions not supported",
	ReasonConnectionRateExceeded:              "connection rate exceeded",
	ReasonMaximumConnectTime:                  "maximum connect time",
	ReasonSubscriptionIdentifiersNotSupported: "subscription identifiers not supported",
	ReasonWildcardSubscriptionsNotSupported:   "wildcard subscriptions not supported",
}

// String returns the standard's name for the code in lower case, or
// "reason 0xNN" for a code the standard does not define.
func (r ReasonCode) String() string {
	if s, ok := reasonNames[r]; ok {
		return s
	}
	return "reason 0x" + strconv.FormatUint(uint64(r), 16)
}

// Error makes a ReasonCode usable as an error.
func (r ReasonCode) Error() string { return r.String() }

// IsError reports whether r signals failure (0x80 and above).
func (r ReasonCode) IsError() bool { return r >= 0x80 }

// Known reports whether the standard defines r at all.
func (r ReasonCode) Known() bool { _, ok := reasonNames[r]; return ok }

// ConnackCode is an MQTT 3.1.1 CONNACK return code (section 3.2.2.3).
type ConnackCode byte

// MQTT 3.1.1 CONNACK return codes.
const (
	ConnackAccepted                    ConnackCode = 0x00
	ConnackUnacceptableProtocolVersion ConnackCode = 0x01
	ConnackIdentifierRejected          ConnackCode = 0x02
	ConnackServerUnavailable           ConnackCode = 0x03
	ConnackBadUsernameOrPassword       ConnackCode = 0x04
	ConnackNotAuthorized               ConnackCode = 0x05
)

// ConnackCodeFor maps a v5 reason code to the 3.1.1 CONNACK return code that
// means the same, and false where 3.1.1 has none (the connection is then
// closed without a CONNACK, as 3.1.1 says for malformed input).
func ConnackCodeFor(r ReasonCode) (ConnackCode, bool) {
	switch r {
	case ReasonSuccess:
		return ConnackAccepted, true
	case ReasonUnsupportedProtocolVersion:
		return ConnackUnacceptableProtocolVersion, true
	case ReasonClientIdentifierNotValid:
		return ConnackIdentifierRejected, true
	case ReasonServerUnavailable, ReasonServerBusy, ReasonServerShuttingDown, ReasonUseAnotherServer, ReasonServerMoved:
		return ConnackServerUnavailable, true
	case ReasonBadUsernameOrPassword, ReasonBadAuthenticationMethod:
		return ConnackBadUsernameOrPassword, true
	case ReasonNotAuthorized, ReasonBanned:
		return ConnackNotAuthorized, true
	}
	return 0, false
}
