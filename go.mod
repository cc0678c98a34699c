module github.com/tetherws/tether

go 1.26

require (
	github.com/asaskevich/EventBus v0.0.0-20200907212545-49d423059eef
	github.com/gobwas/ws v1.5.0
	github.com/jonboulle/clockwork v0.5.0
	go.uber.org/goleak v1.3.0
)

require github.com/gobwas/httphead v0.1.0 // indirect
