module github.com/tetherws/tether

// go 1.26 is the floor: gobwas/ws v1.5.0 declares go 1.26, so go mod tidy
// raises anything lower, in this module and in every consumer. tether's
// own code needs only Go 1.25 (testing/synctest): it vets (stdversion
// included) and tests clean at go 1.25.0 when ws's line is lowered too.
go 1.26

require (
	github.com/asaskevich/EventBus v0.0.0-20200907212545-49d423059eef
	github.com/gobwas/ws v1.5.0
	github.com/jonboulle/clockwork v0.5.0
	go.uber.org/goleak v1.3.0
)

require github.com/gobwas/httphead v0.1.0 // indirect
