module planted

go 1.21
