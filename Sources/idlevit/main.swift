import IdleViTCLI

IdleViTCommand.runMain()
