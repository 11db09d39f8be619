module driftloop.local/pause

go 1.22
