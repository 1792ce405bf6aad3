def loss(lr, epoch):
    return (lr - 0.3) ** 2 + 0.1 / (epoch + 1)
